package listener

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	zmq4plain "github.com/go-zeromq/zmq4/security/plain"

	"github.com/mispsentinel/listener/pipeline"
)

// FuzzZeroMQFrame feeds arbitrary frames to the ZeroMQ decoder: it must never panic, and whatever
// it accepts must be a consistent notice. Seeds: f.Add below and testdata/fuzz/FuzzZeroMQFrame.
func FuzzZeroMQFrame(f *testing.F) {
	f.Add([]byte(`misp_json {"Event":{"uuid":"`+testEventUUID+`","published":false,"Attribute":[{"uuid":"9d4b1c1e-6f0a-4b8e-8f3e-2c1d0a9b7e61","type":"ip-dst","value":"203.0.113.7","to_ids":"1"}]}}`), []byte{})
	f.Add([]byte(`misp_json_event {"Event":{"id":"1","uuid":"`+testEventUUID+`"},"action":"delete"}`), []byte{})
	f.Add([]byte(`misp_json_event {"Event":"12","Server":"3","action":"add_from_connected_server"}`), []byte{})
	f.Add([]byte(`misp_json_self {"status": "I'm still alive.", "uptime": 20}`), []byte{})
	f.Add([]byte(`misp_json`), []byte(`{"Event":{}}`))
	f.Add([]byte{0xff, ' ', '{', '}'}, []byte{})
	at := time.Unix(1795300000, 0)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		frames := [][]byte{first}
		if len(second) > 0 {
			frames = append(frames, second)
		}
		out, err := decodeFrames(frames, at)
		if err != nil {
			if out.notice != nil || out.heartbeat || out.ignored != "" {
				t.Fatalf("error %v together with an outcome %+v", err, out)
			}
			return
		}
		if len(frames) != 1 {
			t.Fatalf("accepted %d frames", len(frames))
		}
		if n := out.notice; n != nil {
			if _, err := canonicalUUID(n.EventUUID); err != nil || len(n.EventUUID) != 36 {
				t.Fatalf("notice with uuid %q", n.EventUUID)
			}
			if (n.Kind == pipeline.Published) != (n.Event != nil) || (n.Kind != pipeline.Published && n.Kind != pipeline.Deleted) {
				t.Fatalf("inconsistent notice %+v", n)
			}
		}
	})
}

// FuzzWebhookBody posts arbitrary bodies through the whole HTTP handler: it must answer 202 only
// for an event it handed to the Handler, and 400 or 413 with a JSON error otherwise.
func FuzzWebhookBody(f *testing.F) {
	f.Add(plainBody)
	f.Add([]byte(`{"Event":{"uuid":"` + testEventUUID + `","_AttributeFlattened":[{"uuid":"x"}],"Attribute":[]}}`))
	f.Add([]byte(`{"response":[{"Event":{"uuid":"` + testEventUUID + `"}}]}`))
	f.Add([]byte(`{"uuid":"` + testEventUUID + `"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"Event":{"uuid":"` + testEventUUID + `","timestamp":"1e400","Attribute":[{"first_seen":"2020-13-45T99:00:00+00:00"}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := &recorder{}
		w := NewWebhook(completeWebhook(WebhookConfig{Addr: "127.0.0.1:0", Token: testToken, MaxBodyBytes: 1 << 16}), rec, discardLogger(), nil)
		req := httptest.NewRequest(http.MethodPost, defaultWebhookPath, bytes.NewReader(body))
		req.Header.Set("Authorization", testToken)
		req.Header.Set("Content-Type", "application/json")
		resp := httptest.NewRecorder()
		w.Handler().ServeHTTP(resp, req)
		notices, _ := rec.snapshot()
		switch resp.Code {
		case http.StatusAccepted:
			if len(notices) != 1 {
				t.Fatalf("202 with %d notices", len(notices))
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if len(notices) != 0 || !bytes.Contains(resp.Body.Bytes(), []byte(`"error"`)) {
				t.Fatalf("%d with notices %v and body %q", resp.Code, notices, resp.Body)
			}
		default:
			t.Fatalf("unexpected status %d: %q", resp.Code, resp.Body)
		}
	})
}

// FuzzZMTPPeer plays arbitrary bytes as the publisher's side of a ZeroMQ connection, greeting
// included, against zmq4's SUB handshake and reader behind the subscriber's wire guard, with
// NULL and with PLAIN security. Nothing a peer sends may panic or allocate past the cap.
func FuzzZMTPPeer(f *testing.F) {
	heartbeat := zmtpFrame(0, []byte(`misp_json_self {"status": "I'm still alive."}`))
	for _, mech := range []string{"NULL", "PLAIN"} {
		plain := mech == "PLAIN"
		g := zmtpGreeting(mech, plain)
		f.Add(plain, bytes.Join([][]byte{g, zmtpHandshake(mech), heartbeat, heartbeat}, nil))
		f.Add(plain, bytes.Join([][]byte{g, zmtpHandshake(mech), zmtpCommand("PING", []byte{0, 1, 'x'}), heartbeat}, nil))
		f.Add(plain, append(g, zmtpFrameHeader(0x04, 1<<50)...))
		f.Add(plain, append(g, zmtpCommand("READY", []byte{2, 'a', 'b'})...))
		f.Add(plain, bytes.Join([][]byte{g, zmtpHandshake(mech), {0x01, 0x00, 0x01, 0x00, 0x00, 0x00}}, nil))
	}
	f.Fuzz(func(t *testing.T, plain bool, stream []byte) {
		client, server := net.Pipe()
		go func() { _, _ = io.Copy(io.Discard, server) }()
		go func() { _, _ = server.Write(stream); _ = server.Close() }()
		defer client.Close()
		conn := newZMTPGuardConn(client, 1<<16)
		var sec zmq4.Security = nullSecurity{}
		if plain {
			sec = zmq4plain.Security("misp", "secret")
		}
		zc, err := zmq4.Open(conn, sec, zmq4.Sub, zmq4.SocketIdentity("fuzz"), false, nil)
		if err != nil {
			return
		}
		for range 1000 {
			msg, err := zc.RecvMsg()
			if err != nil {
				return
			}
			size := 0
			for _, fr := range msg.Frames {
				size += len(fr) + frameOverhead
			}
			if size > 1<<16+frameOverhead {
				t.Fatalf("a message of %d bytes passed the 64 KiB cap", size)
			}
		}
	})
}

// nullSecurity is zmq4's NULL mechanism, which zmq4 does not export: exchange READY commands.
type nullSecurity struct{}

func (nullSecurity) Type() zmq4.SecurityType { return zmq4.NullSecurity }

func (nullSecurity) Handshake(conn *zmq4.Conn, _ bool) error {
	raw, err := conn.Meta.MarshalZMTP()
	if err != nil {
		return err
	}
	if err := conn.SendCmd(zmq4.CmdReady, raw); err != nil {
		return err
	}
	cmd, err := conn.RecvCmd()
	if err != nil {
		return err
	}
	if cmd.Name != zmq4.CmdReady {
		return zmq4.ErrBadCmd
	}
	return conn.Peer.Meta.UnmarshalZMTP(cmd.Body)
}

func (nullSecurity) Encrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }
func (nullSecurity) Decrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }
