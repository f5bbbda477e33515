package defender

// Cause values of the pusher.FatalError the client returns: a bounded set, usable as a metric
// label.
const (
	CauseCredential       = "credential"        // Entra refused the credential, or MDE refused a fresh token
	CausePermission       = "permission"        // 403: Ti.ReadWrite.All missing, or a token for the wrong audience
	CauseHostOrPath       = "host_or_path"      // 404 on import or list: API host or path wrong
	CauseUnexpectedStatus = "unexpected_status" // another status no retry can fix
)

// CapError means MDE refused a whole import because the tenant holds its 15,000 active
// indicators (one of the two behaviours the spec leaves open, §9). Nothing was stored; the
// budget must shrink before new indicators are imported again. Updates and deletes still work.
type CapError struct {
	Message string
}

func (e *CapError) Error() string {
	return "defender tenant indicator cap reached: " + e.Message
}
