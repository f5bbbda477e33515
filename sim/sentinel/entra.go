package sentinel

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// handleDiscovery serves the OIDC metadata MSAL reads before its first token request. The
// issuer must have the authority's scheme and host (port included) or MSAL refuses it.
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !strings.EqualFold(tenant, s.opts.TenantID) {
		writeEntraError(w, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("AADSTS90002: Tenant '%s' not found.", tenant), s.now())
		return
	}
	base := s.URL + "/" + s.opts.TenantID
	writeJSON(w, http.StatusOK, map[string]string{
		"issuer":                 base + "/v2.0",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
		"token_endpoint":         base + "/oauth2/v2.0/token",
	})
}

// handleToken implements the client-credentials grant with a client secret or a
// certificate-signed client assertion.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	s.mu.Lock()
	s.stats.TokenRequests++
	s.mu.Unlock()

	if !strings.EqualFold(r.PathValue("tenant"), s.opts.TenantID) {
		writeEntraError(w, http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("AADSTS90002: Tenant '%s' not found.", r.PathValue("tenant")), now)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		writeEntraError(w, http.StatusBadRequest, "invalid_request", 900144, "AADSTS900144: The request body could not be parsed.", now)
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeEntraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("AADSTS70003: The app requested an unsupported grant type '%s'.", gt), now)
		return
	}
	clientID := r.PostForm.Get("client_id")
	s.mu.Lock()
	app, known := s.apps[clientID]
	s.mu.Unlock()
	if !known {
		writeEntraError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory.", clientID), now)
		return
	}
	if assertion := r.PostForm.Get("client_assertion"); assertion != "" {
		endpoint := s.URL + "/" + s.opts.TenantID + "/oauth2/v2.0/token"
		if r.PostForm.Get("client_assertion_type") != jwtBearer {
			writeEntraError(w, http.StatusBadRequest, "invalid_request", 900023, "AADSTS900023: Specified client_assertion_type is not supported.", now)
			return
		}
		// A workload identity presents its federated token as is; a certificate credential
		// presents a JWT it signed.
		federated := app.FederatedToken != "" && assertion == app.FederatedToken
		if !federated {
			if err := verifyAssertion(app, assertion, endpoint, now); err != nil {
				writeEntraError(w, http.StatusUnauthorized, "invalid_client", 700027,
					"AADSTS700027: Client assertion failed signature validation: "+err.Error(), now)
				return
			}
		}
	} else if app.Secret == "" || r.PostForm.Get("client_secret") != app.Secret {
		writeEntraError(w, http.StatusUnauthorized, "invalid_client", 7000215,
			"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.", now)
		return
	}
	// MSAL appends "openid offline_access profile"; the resource scope is the one ending in
	// "/.default". Claims (CAE capabilities, nbf challenges) are accepted and ignored.
	var scope string
	for _, sc := range strings.Fields(r.PostForm.Get("scope")) {
		if slices.Contains(s.opts.Scopes, sc) {
			scope = sc
		}
	}
	if scope == "" {
		writeEntraError(w, http.StatusBadRequest, "invalid_scope", 70011,
			fmt.Sprintf("AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", r.PostForm.Get("scope")), now)
		return
	}

	token := s.issue(clientID, scope, now)
	secs := int(s.opts.TokenLifetime / time.Second)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   token,
	})
}

// handleManagedIdentityToken implements the App Service managed-identity protocol
// (IDENTITY_ENDPOINT / IDENTITY_HEADER): GET ?api-version=2019-08-01&resource=... .
func (s *Server) handleManagedIdentityToken(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	s.count(func(st *Stats) { st.TokenRequests++ })
	if r.Header.Get("X-IDENTITY-HEADER") != s.opts.ManagedIdentityHeader {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "missing or wrong X-IDENTITY-HEADER"})
		return
	}
	if id := r.URL.Query().Get("client_id"); id != "" && id != s.opts.ManagedIdentityClientID {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "unknown user-assigned identity " + id})
		return
	}
	resource := strings.TrimSuffix(r.URL.Query().Get("resource"), "/")
	scope := resource + "/.default"
	if !slices.Contains(s.opts.Scopes, scope) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_resource", "error_description": "unknown resource " + resource})
		return
	}
	token := s.issue(s.opts.ManagedIdentityClientID, scope, now)
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": token,
		"expires_on":   strconv.FormatInt(now.Add(s.opts.TokenLifetime).Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    s.opts.ManagedIdentityClientID,
	})
}

// issue records and returns a new access token of clientID.
func (s *Server) issue(clientID, scope string, now time.Time) string {
	token := randomToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = issuedToken{tenantID: s.opts.TenantID, clientID: clientID, scope: scope, issued: now, expires: now.Add(s.opts.TokenLifetime), epoch: s.tokenEpoch}
	s.stats.TokensIssued++
	return token
}

// authenticate returns the token presented in r, or a reason it is not acceptable.
func (s *Server) authenticate(r *http.Request, now time.Time) (issuedToken, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return issuedToken{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[raw]
	if !ok || !now.Before(tok.expires) || tok.epoch != s.tokenEpoch {
		return issuedToken{}, false
	}
	if !strings.HasPrefix(tok.scope, "https://management.") {
		return issuedToken{}, false
	}
	return tok, true
}

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// verifyAssertion checks a client assertion the way Entra does for certificate credentials:
// signature (PS256 or RS256) by the registered certificate, thumbprint, audience, issuer,
// subject and lifetime.
func verifyAssertion(app App, assertion, tokenEndpoint string, now time.Time) error {
	if app.Certificate == nil {
		return errors.New("no certificate registered for the app")
	}
	pub, ok := app.Certificate.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("registered certificate has no RSA key")
	}
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return errors.New("assertion is not a JWT")
	}
	var header struct {
		Alg     string `json:"alg"`
		X5t     string `json:"x5t"`
		X5tS256 string `json:"x5t#S256"`
	}
	var claims struct {
		Aud string  `json:"aud"`
		Iss string  `json:"iss"`
		Sub string  `json:"sub"`
		Exp float64 `json:"exp"`
		Nbf float64 `json:"nbf"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	signed := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch header.Alg {
	case "PS256":
		thumb := sha256.Sum256(app.Certificate.Raw)
		if header.X5tS256 != base64.StdEncoding.EncodeToString(thumb[:]) {
			return errors.New("x5t#S256 does not match the registered certificate")
		}
		err = rsa.VerifyPSS(pub, crypto.SHA256, signed[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case "RS256":
		thumb := sha1.Sum(app.Certificate.Raw) //nolint:gosec // x5t is defined as a SHA-1 thumbprint
		if header.X5t != base64.StdEncoding.EncodeToString(thumb[:]) {
			return errors.New("x5t does not match the registered certificate")
		}
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, signed[:], sig)
	default:
		return fmt.Errorf("unsupported alg %q", header.Alg)
	}
	if err != nil {
		return errors.New("bad signature")
	}
	switch {
	case claims.Aud != tokenEndpoint:
		return fmt.Errorf("audience %q is not the token endpoint", claims.Aud)
	case claims.Iss != app.ClientID || claims.Sub != app.ClientID:
		return errors.New("issuer and subject must be the client id")
	case float64(now.Unix()) >= claims.Exp:
		return errors.New("assertion expired")
	case claims.Nbf != 0 && float64(now.Add(5*time.Minute).Unix()) < claims.Nbf:
		return errors.New("assertion not yet valid")
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeEntraError(w http.ResponseWriter, status int, code string, aadsts int, description string, now time.Time) {
	ts := now.UTC().Format("2006-01-02 15:04:05Z")
	trace, corr := randomGUID(), randomGUID()
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("%s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", description, trace, corr, ts),
		"error_codes":       []int{aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
	})
}

func randomGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// DefenderScopes are the token scopes of Microsoft Defender for Endpoint's API that the
// simulated Entra grants by default: the legacy resource Microsoft recommends, its aliases,
// the newer XDR resource and the government API hosts (shared/spec/defender-api.md §1.2).
var DefenderScopes = []string{
	"https://api.securitycenter.microsoft.com/.default",
	"https://securitycenter.onmicrosoft.com/windowsatpservice/.default",
	"https://api.securitycenter.windows.com/.default",
	"https://api.security.microsoft.com/.default",
	"https://api-gcc.securitycenter.microsoft.us/.default",
	"https://api-gov.securitycenter.microsoft.us/.default",
}

// Token is an access token the simulated Entra issued and still honours.
type Token struct {
	TenantID, ClientID string
	// Scope is the scope it was issued for (its audience plus "/.default").
	Scope   string
	Expires time.Time
}

// LookupToken returns the token raw if this Entra issued it and it is neither expired at now
// nor invalidated (InvalidateTokens). Other simulated APIs (sim/defender) use it to
// authenticate requests; they decide themselves which scopes they accept.
func (s *Server) LookupToken(raw string, now time.Time) (Token, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[raw]
	if !ok || !now.Before(tok.expires) || tok.epoch != s.tokenEpoch {
		return Token{}, false
	}
	return Token{TenantID: tok.tenantID, ClientID: tok.clientID, Scope: tok.scope, Expires: tok.expires}, true
}
