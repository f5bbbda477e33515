package listener

// Source names, as found in Notice.Source and in metric labels.
const (
	SourceZeroMQ  = "zeromq"
	SourceWebhook = "webhook"
)
