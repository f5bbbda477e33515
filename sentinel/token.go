package sentinel

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// tokenSource caches the access token of one credential and scope.
//
// The client asks the credential itself rather than running azcore's BearerTokenPolicy
// because a 401 must lead to exactly one genuinely new token: the policy only drops its own
// cache on 401, and the azidentity credential behind it would hand back the same cached
// (rejected) token until it nears expiry. A token request carrying claims bypasses the
// credential's cache, so after a 401 the source asks with an "nbf" claims challenge, the
// same mechanism Continuous Access Evaluation uses to demand a token newer than a revoked one.
type tokenSource struct {
	cred  azcore.TokenCredential
	scope string
	now   func() time.Time

	mu  sync.Mutex
	tok azcore.AccessToken
}

// refreshMargin is how long before expiry a token is replaced (azcore's rule).
const refreshMargin = 5 * time.Minute

// token returns a usable token. rejected, when not empty, is a token Sentinel answered 401
// to: if it is still the cached one, a new token is demanded from Entra.
func (t *tokenSource) token(ctx context.Context, rejected string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	force := rejected != "" && rejected == t.tok.Token
	if !force && t.tok.Token != "" && !t.needsRefresh(now) {
		return t.tok.Token, nil
	}
	opts := policy.TokenRequestOptions{Scopes: []string{t.scope}}
	if force {
		opts.Claims = fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, now.Unix())
	}
	tok, err := t.cred.GetToken(ctx, opts)
	if err != nil {
		return "", fmt.Errorf("get token for %s: %w", t.scope, err)
	}
	t.tok = tok
	return tok.Token, nil
}

func (t *tokenSource) needsRefresh(now time.Time) bool {
	if !t.tok.RefreshOn.IsZero() {
		return !now.Before(t.tok.RefreshOn)
	}
	return !now.Before(t.tok.ExpiresOn.Add(-refreshMargin))
}

// TokenSource is the token cache of one credential and scope, exported so that the clients of
// other Microsoft APIs (package defender) authenticate the same identities the same way: one
// cached token, refreshed before expiry, and exactly one genuinely new token after a 401.
type TokenSource = tokenSource

// NewTokenSource returns a token cache for cred and scope (a "/.default" scope).
func NewTokenSource(cred azcore.TokenCredential, scope string) *TokenSource {
	return &tokenSource{cred: cred, scope: scope, now: time.Now}
}

// Token returns a usable token. rejected, when not empty, is a token the API answered 401 to:
// if it is still the cached one, a new token is demanded from Entra.
func (t *tokenSource) Token(ctx context.Context, rejected string) (string, error) {
	return t.token(ctx, rejected)
}
