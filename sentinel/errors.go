package sentinel

// Cause values of the pusher.FatalError a Client returns: a bounded set, usable as a metric
// label.
const (
	CauseCredential       = "credential"        // Entra refused the credential, or Sentinel refused a fresh token
	CauseRole             = "role"              // 403: the identity lacks Microsoft Sentinel Contributor
	CauseWorkspaceOrPath  = "workspace_or_path" // 404: workspace id, API host, path or api-version wrong
	CauseWholeRequest     = "whole_request"     // 400 for the request and for each record alone: the request is wrong
	CauseUnexpectedStatus = "unexpected_status" // another status no retry can fix (3xx, 405, ...)
)
