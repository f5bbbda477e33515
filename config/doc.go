// Package config owns the listener's typed configuration: the YAML file, the LISTENER_*
// environment overrides, the defaults (all in defaults.go), validation that names the key path
// of every problem, and secrets that redact themselves wherever they are printed or logged.
//
// Loading is three explicit steps: Load parses the file and environment and does no network
// I/O; Validate checks everything that can be checked without I/O and returns every problem at
// once; Resolve fetches secret values (environment, files, Azure Key Vault through the
// KeyVault interface, see package config/keyvault). Config never imports other project
// packages: the wiring code maps these plain structs onto each package's options.
package config
