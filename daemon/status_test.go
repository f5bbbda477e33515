package daemon

import "testing"

// A sink's problem prints on one line: the Azure SDK's multi-line error texts are folded.
func TestProblemIsOneLine(t *testing.T) {
	s := SinkStatus{ConfigError: "sink soc: identity:\n  ClientSecretCredential: authentication failed\n\tAADSTS7000215: Invalid client secret provided.\n"}
	if got, want := s.Problem(), "sink soc: identity: ClientSecretCredential: authentication failed AADSTS7000215: Invalid client secret provided."; got != want {
		t.Errorf("Problem() = %q, want %q", got, want)
	}
	if got := (SinkStatus{Stopped: "failing since x,\nnext retry y"}).Problem(); got != "failing since x, next retry y" {
		t.Errorf("Problem() of a failing sink = %q", got)
	}
}
