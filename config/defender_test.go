package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDefenderSinkTakesItsOwnDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	yaml := `misp:
  url: https://misp.example.org
  key: k
sinks:
  - name: mde
    kind: defender
    cloud: gcc-high
    identity: {kind: managed_identity}
  - name: regional
    kind: defender
    identity: {kind: managed_identity, client_id: 99999999-8888-4777-8666-555555555555}
    defender: {region: eu, action: Block, actions_by_type: {CertificateThumbprint: Allowed}}
  - name: soc
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: managed_identity}
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	mde, regional, soc := cfg.Sinks[0], cfg.Sinks[1], cfg.Sinks[2]
	if mde.BatchSize != 500 || mde.Defender.Budget != 14000 || mde.Defender.Action != "Audit" || !mde.Defender.GenerateAlert ||
		mde.Defender.Score.RecencyHalfLife != 30*24*time.Hour || mde.Defender.ReadBackInterval != time.Hour {
		t.Errorf("defender defaults: %+v", mde)
	}
	if mde.Endpoints.APIHost != "https://api-gov.securitycenter.microsoft.us" || mde.Endpoints.LoginHost != "https://login.microsoftonline.us" ||
		mde.Endpoints.Scope != "https://api-gov.securitycenter.microsoft.us/.default" {
		t.Errorf("gcc-high endpoints: %+v", mde.Endpoints)
	}
	if regional.Endpoints.APIHost != "https://eu.api.security.microsoft.com" || regional.Endpoints.Scope != "https://api.securitycenter.microsoft.com/.default" ||
		regional.Defender.Budget != 14000 {
		t.Errorf("regional: %+v", regional)
	}
	if soc.Kind != SinkSentinel || soc.BatchSize != 100 || soc.Endpoints.APIHost != "https://api.ti.sentinel.azure.com" {
		t.Errorf("a sentinel sink beside defender ones: %+v", soc)
	}
}
