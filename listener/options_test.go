package listener

import "github.com/mispsentinel/listener/config"

// The sources keep no defaults: these helpers fill the fields a test leaves zero the way the
// daemon does for an empty configuration file, from config's one table of defaults.

// completeZeroMQ returns cfg with every zero field set to the daemon's default.
func completeZeroMQ(cfg ZeroMQConfig) ZeroMQConfig {
	d := config.Default().ZeroMQ
	setIfZero(&cfg.HeartbeatTimeout, d.HeartbeatTimeout)
	setIfZero(&cfg.ReconnectMin, d.ReconnectBackoff.Initial)
	setIfZero(&cfg.ReconnectMax, d.ReconnectBackoff.Max)
	setIfZero(&cfg.DialTimeout, config.ZeroMQDialTimeout)
	setIfZero(&cfg.Workers, config.ZeroMQWorkers)
	setIfZero(&cfg.MaxQueued, config.ZeroMQMaxQueued)
	setIfZero(&cfg.MaxFrameBytes, d.MaxFrameBytes)
	setIfZero(&cfg.DrainTimeout, config.ZeroMQDrainTimeout)
	return cfg
}

// completeWebhook returns cfg with every zero field set to the daemon's default.
func completeWebhook(cfg WebhookConfig) WebhookConfig {
	d := config.Default().Webhook
	setIfZero(&cfg.Path, d.Path)
	setIfZero(&cfg.AuthHeader, d.AuthHeader)
	setIfZero(&cfg.MaxBodyBytes, d.MaxBodyBytes)
	setIfZero(&cfg.MaxInflightBytes, max(d.MaxInflightBytes, cfg.MaxBodyBytes))
	setIfZero(&cfg.MaxConns, d.MaxConnections)
	setIfZero(&cfg.MaxHeaderBytes, config.HTTPMaxHeaderBytes)
	setIfZero(&cfg.ReadHeaderTimeout, config.WebhookReadHeaderTimeout)
	setIfZero(&cfg.ReadTimeout, config.WebhookReadTimeout)
	setIfZero(&cfg.WriteTimeout, config.WebhookWriteTimeout)
	setIfZero(&cfg.IdleTimeout, config.WebhookIdleTimeout)
	setIfZero(&cfg.ShutdownTimeout, config.WebhookShutdownTimeout)
	setIfZero(&cfg.HandlerTimeout, cfg.WriteTimeout*3/4)
	return cfg
}

func setIfZero[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}

// defaultWebhookPath is the webhook path of an empty configuration.
var defaultWebhookPath = config.Default().Webhook.Path
