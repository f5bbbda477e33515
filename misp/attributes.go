package misp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"unsafe"
)

// AttributeHit is one attribute MISP's attribute search found, with the event it belongs to.
type AttributeHit struct {
	Attribute
	// EventUUID, EventID and EventInfo name the attribute's event ("Event" beside it in the
	// answer).
	EventUUID string
	EventID   string
	EventInfo string
	// ObjectName is the name of the MISP object holding the attribute, when MISP sent it.
	ObjectName string
}

// SearchAttributes runs POST /attributes/restSearch with filters (for example {"value": v} or
// {"uuid": u}) and returns at most limit attributes (page 1), in MISP's order. Its answer is
// {"response": {"Attribute": [...]}}, each attribute carrying its event's id, uuid and info;
// a search that finds nothing answers {"response": {"Attribute": []}} (older versions: []).
// It is not retried: a person asked.
func (c *Client) SearchAttributes(ctx context.Context, filters map[string]any, limit int) ([]AttributeHit, error) {
	body, err := searchBody(filters)
	if err != nil {
		return nil, fmt.Errorf("search attributes: %w", err)
	}
	if limit > 0 {
		body["limit"] = limit
		body["page"] = 1
	}
	body["includeEventUuid"] = true
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("search attributes: encode filters: %w", err)
	}
	data, _, err := c.do(ctx, http.MethodPost, "/attributes/restSearch", payload)
	if err != nil {
		return nil, fmt.Errorf("search attributes: %w", err)
	}
	hits, err := DecodeAttributeHits(data)
	if err != nil {
		return nil, fmt.Errorf("search attributes: %w", err)
	}
	return hits, nil
}

// DecodeAttributeHits decodes an attributes/restSearch answer. Like DecodeEvent it takes
// ownership of data.
func DecodeAttributeHits(data []byte) ([]AttributeHit, error) {
	var envelope struct {
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(data, &envelope); err != nil {
		return nil, fmt.Errorf("decode attribute search: %w", err)
	}
	var list struct {
		Attribute []json.RawMessage `json:"Attribute"`
	}
	if r := envelope.Response; len(r) > 0 && r[0] == '{' {
		if err := json.Unmarshal(r, &list); err != nil {
			return nil, fmt.Errorf("decode attribute search: %w", err)
		}
	}
	hits := make([]AttributeHit, 0, len(list.Attribute))
	for i, raw := range list.Attribute {
		var hit AttributeHit
		p := &parser{data: raw, src: unsafe.String(unsafe.SliceData(raw), len(raw))}
		p.push(fmt.Sprintf("response.Attribute[%d]", i))
		if err := p.attribute(&hit.Attribute); err != nil {
			return nil, fmt.Errorf("decode attribute search: %w", err)
		}
		var context struct {
			Event struct {
				ID   json.RawMessage `json:"id"`
				UUID string          `json:"uuid"`
				Info string          `json:"info"`
			} `json:"Event"`
			Object struct {
				Name string `json:"name"`
			} `json:"Object"`
			EventUUID string `json:"event_uuid"`
		}
		if err := json.Unmarshal(raw, &context); err != nil {
			return nil, fmt.Errorf("decode attribute search: response.Attribute[%d]: %w", i, err)
		}
		hit.EventUUID, hit.EventInfo, hit.ObjectName = context.Event.UUID, context.Event.Info, context.Object.Name
		if hit.EventUUID == "" {
			hit.EventUUID = context.EventUUID
		}
		hit.EventID = hit.Attribute.EventID
		if id := jsonText(context.Event.ID); id != "" {
			hit.EventID = id
		}
		hits = append(hits, hit)
	}
	return hits, nil
}

// jsonText reads a JSON string or number as text.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}
