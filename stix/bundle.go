package stix

import (
	"crypto/sha256"
	"hash/maphash"

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
	var key []byte // ids and hashes of a few objects, written to h at once
	seen := newIDSet(len(objects))
	b := make([]byte, 0, size)
	b = append(b, `{"type":"bundle","id":"bundle--`...)
	idAt := len(b)
	b = append(b, `00000000-0000-0000-0000-000000000000","objects":[`...)
	first := true
	for i := range objects {
		o := &objects[i]
		if !seen.add(o.ID) {
			continue
		}
		key = append(append(key, o.ID...), o.Hash...)
		if len(key) >= 4096 {
			h.Write(key)
			key = key[:0]
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, o.Body...)
	}
	h.Write(key)
	b = append(b, ']', '}')
	id := uuid.NewSHA1(Namespace, append([]byte("bundle/"), h.Sum(nil)...)).String()
	copy(b[idAt:], id)
	return b
}

// idSet records ids. It keys a map by a 64-bit hash of the id (smaller and faster to probe
// than one keyed by the id, which mattered with tens of thousands of objects per event) and
// keeps the ids whose hash collides with another's apart.
type idSet struct {
	seed   maphash.Seed
	first  map[uint64]string // hash → the first id with it
	others map[string]struct{}
}

func newIDSet(n int) *idSet {
	return &idSet{seed: maphash.MakeSeed(), first: make(map[uint64]string, n)}
}

// add records id and reports whether it was new.
func (s *idSet) add(id string) bool {
	h := maphash.String(s.seed, id)
	prev, ok := s.first[h]
	if !ok {
		s.first[h] = id
		return true
	}
	if prev == id {
		return false
	}
	if _, dup := s.others[id]; dup {
		return false
	}
	if s.others == nil {
		s.others = make(map[string]struct{})
	}
	s.others[id] = struct{}{}
	return true
}
