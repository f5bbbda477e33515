// Package deploy holds no code: its tests check the deployment and release artefacts that live
// beside it and at the repository root against the daemon they describe. They check that the
// Grafana dashboard (grafana/listener.json) and the Prometheus rules (prometheus/alerts.yaml)
// name only metrics and labels the daemon registers, that every alert has a firing and a
// silent promtool test case, that the Helm chart carries the same rules file, and that the
// release targets and version stamping in .goreleaser.yaml, .ci/run and the Dockerfile agree.
//
// It never starts the daemon, opens a network connection or needs Docker or Kubernetes.
package deploy
