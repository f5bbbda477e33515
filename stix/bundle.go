package stix

import (
	"crypto/sha256"

	"github.com/google/uuid"
)

// Bundle wraps objects into one STIX 2.1 bundle. Its id is derived from the objects' ids and
// hashes, so the same objects always give the same bundle; objects with the same id are
// written once (the first one wins).
func Bundle(objects []Object) []byte {
	size := 128 // envelope
	for i := range objects {
		size += len(objects[i].Body) + 1
	}
	h := sha256.New()
	var key []byte // id and hash of one object, written to h at once (no conversion per field)
	seen := make(map[string]struct{}, len(objects))
	b := make([]byte, 0, size)
	b = append(b, `{"type":"bundle","id":"bundle--`...)
	idAt := len(b)
	b = append(b, `00000000-0000-0000-0000-000000000000","objects":[`...)
	first := true
	for i := range objects {
		o := &objects[i]
		if _, dup := seen[o.ID]; dup {
			continue
		}
		seen[o.ID] = struct{}{}
		key = append(append(key[:0], o.ID...), o.Hash...)
		h.Write(key)
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, o.Body...)
	}
	b = append(b, ']', '}')
	id := uuid.NewSHA1(Namespace, append([]byte("bundle/"), h.Sum(nil)...)).String()
	copy(b[idAt:], id)
	return b
}
