package misp

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// attributeSearch answers POST /attributes/restSearch (spec misp-interfaces §3.3) for the
// parameters the simulator models: value (either half of a composite value matches, % is a
// wildcard, case-insensitive as MySQL's LIKE), uuid (the attribute's or its event's), type,
// to_ids, deleted, eventid, tags (NOT only), limit and page. The answer is
// {"response": {"Attribute": [...]}}, each attribute carrying "Event": {id, info, org_id,
// orgc_id, uuid} and, inside a MISP object, "Object": {id, distribution, sharing_group_id};
// X-Result-Count is the number returned, plus one when the page is full.
func (m *MISP) attributeSearch(w http.ResponseWriter, r *http.Request) {
	f, ok := m.readSearch(w, r)
	if !ok {
		return
	}
	var err error
	// value and uuid mean something else here than on events (see above): match them
	// below, not through attributeMatches.
	values, uuids := f.values, f.uuids
	f.values, f.uuids = nil, nil

	m.mu.Lock()
	var out []byte
	n, skip := 0, 0
	if f.limit > 0 {
		skip = (f.page - 1) * f.limit
	}
	full := false
	for _, ev := range m.sortedEvents() {
		if full {
			break
		}
		if f.eventIDs != nil && !containsInt(f.eventIDs, ev.id) {
			continue
		}
		visit := func(obj *object, a *attribute) {
			if full || !m.attributeMatches(f, a) {
				return
			}
			if values != nil && !anyValueMatches(values, a.value) {
				return
			}
			if uuids != nil && !anyFold(uuids, a.uuid) && !anyFold(uuids, ev.uuid) {
				return
			}
			if skip > 0 {
				skip--
				return
			}
			var objectID int64
			if obj != nil {
				objectID = obj.id
			}
			if n > 0 {
				out = append(out, ',')
			}
			var aerr error
			out, aerr = a.appendJSON(out, ev.id, objectID, nil, shape{})
			if aerr != nil {
				err = aerr
				return
			}
			// Splice the context MISP adds beside the attribute.
			out = out[:len(out)-1]
			evCtx, _ := json.Marshal(map[string]string{
				"id": itoa(ev.id), "info": ev.info, "org_id": ev.orgID, "orgc_id": ev.orgcID, "uuid": ev.uuid,
			})
			out = append(out, `,"Event":`...)
			out = append(out, evCtx...)
			if obj != nil {
				objCtx, _ := json.Marshal(map[string]string{"id": itoa(obj.id), "distribution": "5", "sharing_group_id": "0"})
				out = append(out, `,"Object":`...)
				out = append(out, objCtx...)
			}
			out = append(out, '}')
			n++
			if f.limit > 0 && n >= f.limit {
				full = true
			}
		}
		for _, a := range ev.topAttributes() {
			visit(nil, a)
		}
		for _, o := range ev.objects {
			if o.deleted && f.deleted == 0 {
				continue
			}
			for _, a := range o.attrs {
				visit(o, a)
			}
		}
	}
	m.mu.Unlock()
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	count := n
	if full {
		count++
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Result-Count", strconv.Itoa(count))
	buf := append([]byte(`{"response":{"Attribute":[`), out...)
	buf = append(buf, "]}}"...)
	_, _ = w.Write(buf)
}

func containsInt(list []int64, v int64) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func anyFold(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

// anyValueMatches applies MISP's value filter to an attribute value: the whole value or
// either half of a composite one (value1, value2), compared as MySQL's LIKE does.
func anyValueMatches(patterns []string, value string) bool {
	halves := []string{value}
	if left, right, ok := strings.Cut(value, "|"); ok {
		halves = append(halves, left, right)
	}
	for _, p := range patterns {
		for _, h := range halves {
			if tagMatch(p, h) {
				return true
			}
		}
	}
	return false
}
