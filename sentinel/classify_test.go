package sentinel

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mispsentinel/listener/internal/version"
	"github.com/mispsentinel/listener/pusher"
)

// reply is what the scripted server does with one upload request.
type reply struct {
	status int
	header map[string]string
	body   string
	hang   bool // block until the client gives up, then abort without an answer
	reset  bool // close the connection without an answer
}

// scriptedRequest is what the scripted server saw.
type scriptedRequest struct {
	token string
	ids   []string
}

// TestUploadOutcomes drives Client.Upload against a loopback TLS server answering every
// outcome Sentinel can produce, and checks the single classification and what Upload does
// with it (refresh, bisection, index mapping, waits).
func TestUploadOutcomes(t *testing.T) {
	now := time.Date(2026, 5, 2, 8, 15, 0, 0, time.UTC)
	const msg429 = `{"statusCode":429,"message":"Rate limit is exceeded. Try again in 17 seconds."}`
	contains := func(ids []string, id string) bool {
		for _, x := range ids {
			if x == id {
				return true
			}
		}
		return false
	}
	fixed := func(replies ...reply) func(int, scriptedRequest) reply {
		return func(n int, _ scriptedRequest) reply { return replies[min(n, len(replies)-1)] }
	}

	tests := []struct {
		name      string
		batch     int
		timeout   time.Duration // the request timeout; a minute unless set
		respond   func(n int, req scriptedRequest) reply
		refused   bool // point the client at a closed port
		rejected  []Rejection
		errKind   string // "", "retryable", "fatal"
		status    int
		cause     string
		after     time.Duration
		errText   string
		requests  int
		refreshes int
	}{
		{name: "200 empty body: all accepted", batch: 3, respond: fixed(reply{status: 200}), requests: 1},
		{name: "200 {}: all accepted", batch: 3, respond: fixed(reply{status: 200, body: "{}"}), requests: 1},
		{name: "200 errors[]: rejected indices with messages, out-of-range index ignored", batch: 5,
			respond: fixed(reply{status: 200, body: `{"errors":[
				{"recordIndex":3,"errorMessages":["Error for Property=pattern: Required property is missing. Actual value: NULL.","second"]},
				{"recordIndex":1,"errorMessages":["Error for Property=id: Required property is missing. Actual value: NULL."]},
				{"recordIndex":7,"errorMessages":["not ours"]}]}`}),
			rejected: []Rejection{
				{Index: 1, Message: "Error for Property=id: Required property is missing. Actual value: NULL."},
				{Index: 3, Message: "Error for Property=pattern: Required property is missing. Actual value: NULL.; second"},
			},
			requests: 1},
		{name: "200 unreadable body: retry", batch: 2, respond: fixed(reply{status: 200, body: "<html>proxy</html>"}),
			errKind: "retryable", status: 200, errText: "unreadable", requests: 1},
		{name: "400 whole batch: bisect down to the bad record", batch: 4,
			respond: func(_ int, req scriptedRequest) reply {
				if contains(req.ids, testID(2)) {
					return reply{status: 400, body: `{"statusCode":400,"message":"Bad format."}`}
				}
				return reply{status: 200}
			},
			// [0 1 2 3] 400, probe [0] 200: a record is fine, so the data is at fault;
			// [0 1] 200, [2 3] 400, [2] 400, [3] 200
			rejected: []Rejection{{Index: 2, Message: "HTTP 400: Bad format."}}, requests: 6},
		{name: "400 whole batch, a probe accepted: bisect finds the one bad record", batch: 4,
			respond: func(_ int, req scriptedRequest) reply {
				if contains(req.ids, testID(0)) {
					return reply{status: 400, body: `{"statusCode":400,"message":"Bad format."}`}
				}
				return reply{status: 200}
			},
			// [0 1 2 3] 400, probe [0] 400, probe [3] 200, then [0 1] 400, [0] 400, [1] 200, [2 3] 200
			rejected: []Rejection{{Index: 0, Message: "HTTP 400: Bad format."}}, requests: 7},
		{name: "400 for the request and every record alike: whole-request fault, 4 requests for 100", batch: 100,
			respond: fixed(reply{status: 400, body: `{"statusCode":400,"message":"Invalid sourcesystem."}`}),
			errKind: "fatal", status: 400, cause: CauseWholeRequest, errText: "Invalid sourcesystem.", requests: 4},
		{name: "400 naming every record: no bisection", batch: 2,
			respond:  fixed(reply{status: 400, body: `{"errors":[{"recordIndex":0,"errorMessages":["a"]},{"recordIndex":1,"errorMessages":["b"]}]}`}),
			rejected: []Rejection{{Index: 0, Message: "a"}, {Index: 1, Message: "b"}}, requests: 1},
		{name: "401 then success: one forced token refresh", batch: 2,
			respond: func(n int, req scriptedRequest) reply {
				if req.token == "token-1" {
					return reply{status: 401, body: `{"statusCode":401,"message":"Unauthorized. Access token is missing or invalid."}`}
				}
				return reply{status: 200}
			},
			requests: 2, refreshes: 1},
		{name: "401 after refresh: fatal", batch: 2,
			respond: fixed(reply{status: 401, body: `{"statusCode":401,"message":"Unauthorized. Access token is missing or invalid."}`}),
			errKind: "fatal", status: 401, cause: CauseCredential, errText: "same cloud", requests: 2, refreshes: 1},
		{name: "403: fatal, names the role", batch: 1, respond: fixed(reply{status: 403}),
			errKind: "fatal", status: 403, cause: CauseRole, errText: "Microsoft Sentinel Contributor", requests: 1},
		{name: "404: fatal, names workspace id and path", batch: 1, respond: fixed(reply{status: 404, body: `{"statusCode":404,"message":"Resource not found"}`}),
			errKind: "fatal", status: 404, cause: CauseWorkspaceOrPath, errText: "workspace ID (a GUID, not the name)", requests: 1},
		{name: "429 documented body only", batch: 1, respond: fixed(reply{status: 429, body: msg429}),
			errKind: "retryable", status: 429, after: 17 * time.Second, requests: 1},
		{name: "429 Retry-After longer than the message", batch: 1,
			respond: fixed(reply{status: 429, header: map[string]string{"Retry-After": "30"}, body: msg429}),
			errKind: "retryable", status: 429, after: 30 * time.Second, requests: 1},
		{name: "429 message longer than Retry-After", batch: 1,
			respond: fixed(reply{status: 429, header: map[string]string{"Retry-After": "5"}, body: msg429}),
			errKind: "retryable", status: 429, after: 17 * time.Second, requests: 1},
		{name: "429 Retry-After as HTTP date", batch: 1,
			respond: fixed(reply{status: 429, header: map[string]string{"Retry-After": now.Add(42 * time.Second).Format(http.TimeFormat)}}),
			errKind: "retryable", status: 429, after: 42 * time.Second, requests: 1},
		{name: "429 Retry-After of years: passed on whole, the pusher caps it", batch: 1,
			respond: fixed(reply{status: 429, header: map[string]string{"Retry-After": "999999999"}}),
			errKind: "retryable", status: 429, after: 999999999 * time.Second, requests: 1},
		{name: "429 Retry-After beyond a Duration: saturates, no overflow", batch: 1,
			respond: fixed(reply{status: 429, header: map[string]string{"Retry-After": "9223372036"}}),
			errKind: "retryable", status: 429, after: maxThrottleWait, requests: 1},
		{name: "429 Retry-After of 1e300 seconds: saturates", batch: 1,
			respond: fixed(reply{status: 429, header: map[string]string{"Retry-After": "1e300"}}),
			errKind: "retryable", status: 429, after: maxThrottleWait, requests: 1},
		{name: "429 naming no wait: one quota window", batch: 1, respond: fixed(reply{status: 429}),
			errKind: "retryable", status: 429, after: 0, requests: 1},
		{name: "500 APIM body", batch: 2, respond: fixed(reply{status: 500, body: `{"statusCode":500,"message":"Internal server error","activityId":"x"}`}),
			errKind: "retryable", status: 500, errText: "Internal server error", requests: 1},
		{name: "503 empty body", batch: 2, respond: fixed(reply{status: 503}),
			errKind: "retryable", status: 503, errText: "empty body", requests: 1},
		{name: "307 redirect: fatal", batch: 1, respond: fixed(reply{status: 307, header: map[string]string{"Location": "https://elsewhere.example/"}}),
			errKind: "fatal", status: 307, cause: CauseUnexpectedStatus, requests: 1},
		{name: "timeout", batch: 1, timeout: time.Second, respond: fixed(reply{hang: true}),
			errKind: "retryable", errText: "timed out", requests: 1},
		{name: "connection reset", batch: 1, respond: fixed(reply{reset: true}),
			errKind: "retryable", requests: 1},
		{name: "connection refused", batch: 1, refused: true, errKind: "retryable", errText: "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				seen []scriptedRequest
			)
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var body struct {
					SourceSystem string            `json:"sourcesystem"`
					Objects      []json.RawMessage `json:"stixobjects"`
				}
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.SourceSystem != "MISP" {
					t.Errorf("request body: %v (sourcesystem %q)", err, body.SourceSystem)
				}
				if ua := r.Header.Get("User-Agent"); !strings.HasSuffix(ua, " listener/"+version.String()) {
					t.Errorf("User-Agent %q does not end with listener/<version>", ua)
				}
				req := scriptedRequest{token: strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")}
				for _, o := range body.Objects {
					var obj struct{ ID string }
					_ = json.Unmarshal(o, &obj)
					req.ids = append(req.ids, obj.ID)
				}
				mu.Lock()
				n := len(seen)
				seen = append(seen, req)
				mu.Unlock()
				rep := tt.respond(n, req)
				switch {
				case rep.hang:
					// Never answer: wait until the client gave up, then abort the response so
					// that no implicit 200 can ever reach a client still listening.
					<-r.Context().Done()
					panic(http.ErrAbortHandler)
				case rep.reset:
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
							_ = tc.NetConn().(*net.TCPConn).SetLinger(0)
							_ = tc.NetConn().Close()
						}
						conn.Close()
					}
					return
				}
				for k, v := range rep.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(rep.status)
				_, _ = w.Write([]byte(rep.body))
			}))
			defer srv.Close()
			apiURL := srv.URL
			if tt.refused {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				apiURL = "https://" + ln.Addr().String()
				ln.Close()
			}
			cred := &stubCredential{}
			// A generous timeout: under load a TLS handshake alone can take longer than a
			// tight one, and a timed-out request would turn any case into "timeout". Only
			// the hanging case waits for it.
			timeout := time.Minute
			if tt.timeout > 0 {
				timeout = tt.timeout
			}
			c, err := NewWithCredential(complete(Config{
				APIURL: apiURL, WorkspaceID: "5a1d3e7c-9b24-4f6a-8c0e-2d4f6a8b0c1e",
				RequestTimeout: timeout, Transport: srv.Client().Transport,
			}), cred, Identity{TenantID: "t", ClientID: "c"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.now = func() time.Time { return now }

			res, err := c.Upload(context.Background(), testBatch(tt.batch, now))

			var (
				re *RetryableError
				fe *FatalError
			)
			switch tt.errKind {
			case "":
				if err != nil {
					t.Fatalf("Upload error %v, want success", err)
				}
				if !reflect.DeepEqual(res.Rejected, tt.rejected) {
					t.Errorf("rejected %+v, want %+v", res.Rejected, tt.rejected)
				}
			case "retryable":
				if !errors.As(err, &re) {
					t.Fatalf("Upload error %v, want *RetryableError", err)
				}
				if re.Status != tt.status || re.After != tt.after {
					t.Errorf("retryable status %d after %s, want %d after %s", re.Status, re.After, tt.status, tt.after)
				}
				// The retry metric's reason follows the status.
				wantReason := pusher.RetryOther
				switch {
				case tt.status == 429:
					wantReason = pusher.RetryThrottled
				case tt.status >= 500:
					wantReason = pusher.RetryServerError
				case tt.status == 0:
					wantReason = pusher.RetryNetwork
				}
				if re.Reason != wantReason {
					t.Errorf("retry reason %q, want %q", re.Reason, wantReason)
				}
			case "fatal":
				if !errors.As(err, &fe) {
					t.Fatalf("Upload error %v, want *FatalError", err)
				}
				if fe.Status != tt.status || fe.Cause != tt.cause {
					t.Errorf("fatal status %d cause %q, want %d %q", fe.Status, fe.Cause, tt.status, tt.cause)
				}
			}
			if tt.errText != "" && (err == nil || !strings.Contains(err.Error(), tt.errText)) {
				t.Errorf("error %v, want it to mention %q", err, tt.errText)
			}
			if tt.errKind != "" && len(res.Rejected) != 0 {
				t.Errorf("failed upload reported rejections %+v", res.Rejected)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != tt.requests {
				t.Errorf("%d requests, want %d", len(seen), tt.requests)
			}
			if cred.withClaims != tt.refreshes {
				t.Errorf("%d forced token refreshes, want %d", cred.withClaims, tt.refreshes)
			}
		})
	}
}

func TestUploadRefusesOversizedBatchAndRejectsInvalidJSONLocally(t *testing.T) {
	var requests int
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		var body struct {
			Objects []json.RawMessage `json:"stixobjects"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Objects) != 2 {
			t.Errorf("server got %d objects (%v), want the 2 valid ones", len(body.Objects), err)
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	c, err := NewWithCredential(complete(Config{APIURL: srv.URL, WorkspaceID: "5a1d3e7c-9b24-4f6a-8c0e-2d4f6a8b0c1e",
		BatchSize: 3, Transport: srv.Client().Transport}), &stubCredential{}, Identity{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	if _, err := c.Upload(context.Background(), testBatch(4, now)); err == nil || !strings.Contains(err.Error(), "exceeds the batch size 3") {
		t.Fatalf("oversized batch: %v", err)
	}
	batch := []json.RawMessage{testIndicator(0, now, nil), json.RawMessage(`{"broken`), testIndicator(2, now, nil)}
	res, err := c.Upload(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Index != 1 || requests != 1 {
		t.Fatalf("rejected %+v after %d requests, want index 1 after 1", res.Rejected, requests)
	}
}
