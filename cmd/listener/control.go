package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/internal/control"
	"github.com/mispsentinel/listener/store"
)

// daemonClients returns the control endpoints a running daemon may answer on, in the order
// they are tried: the control socket, then the ops listener when control.token is set.
func daemonClients(ctx context.Context, cfg *config.Config) ([]*control.Client, error) {
	var out []*control.Client
	if path := cfg.ControlSocket(); path != "" {
		out = append(out, control.NewSocketClient(path, config.ControlTimeout))
	}
	if cfg.Control.Token.IsSet() && cfg.Metrics.Listen != "" {
		tok, err := config.Resolver{KeyVault: &lazyKeyVault{}}.Refresh(ctx, cfg.Control.Token)
		if err != nil {
			return nil, fmt.Errorf("control.token: %w", err)
		}
		out = append(out, control.NewHTTPClient(cfg.Metrics.Listen, tok.Value(), config.ControlTimeout))
	}
	return out, nil
}

// askDaemon runs ask against the running daemon's control endpoint and returns where it was
// answered. It returns an error matching control.ErrNoDaemon when no daemon answers on any
// endpoint, so the caller falls back to opening the store.
func askDaemon(ctx context.Context, cfg *config.Config, ask func(*control.Client) error) (string, error) {
	clients, err := daemonClients(ctx, cfg)
	if err != nil {
		return "", err
	}
	for _, c := range clients {
		err := ask(c)
		if err == nil {
			return "running daemon (" + c.Where + ")", nil
		}
		if !errors.Is(err, control.ErrNoDaemon) {
			return "", err
		}
	}
	return "", control.ErrNoDaemon
}

// openStore opens the store in store.dir when no daemon answered. It never creates one: a
// directory without a store is an error that says so.
func openStore(cfg *config.Config) (*store.Store, error) {
	dir := cfg.Store.Dir
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no daemon answers on the control endpoint and there is no store in %s (store.dir)", dir)
	}
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		return nil, fmt.Errorf("no daemon answers on the control endpoint, and the store cannot be opened (is a daemon with control.socket: off running?): %w", err)
	}
	return st, nil
}
