package misp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// The notifications MISP sends when an event is published or deleted: the ZeroMQ misp_json
// and misp_json_event topics and the workflow webhook (spec misp-interfaces §1.4, §2.3, §2.4).

// webhookCommit completes the User-Agent Module_webhook sends, "MISP <version> - #<commit>":
// the (abbreviated) commit of MISP 2.5.1 the spec was read from.
const webhookCommit = "bb0909a37a7b"

// PublishZMQ does what MISP's Event::publish does for ZeroMQ: it fetches the event (soft-deleted
// attributes excluded), marks the event published, and sends the fetched copy as misp_json. The
// payload therefore shows the state before this publish: "published": false and the previous
// publish_timestamp on a first publish.
func (m *MISP) PublishZMQ(pub *Publisher, eventUUID string) error {
	payload, err := m.fetchForPublish(eventUUID, false)
	if err != nil {
		return err
	}
	if err := m.Publish(eventUUID); err != nil {
		return err
	}
	if err := pub.Publish("misp_json", payload); err != nil {
		return fmt.Errorf("publish event %s on misp_json: %w", eventUUID, err)
	}
	return nil
}

// DeleteZMQ deletes an event and sends the misp_json_event notification MISP's Event
// beforeDelete emits: {"Event": {events-table row}, "action": "delete"}.
func (m *MISP) DeleteZMQ(pub *Publisher, eventUUID string) error {
	m.mu.Lock()
	ev, ok := m.events[eventUUID]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("event %s not found", eventUUID)
	}
	count := 0
	ev.eachAttribute(func(a *attribute) {
		if !a.deleted {
			count++
		}
	})
	row := map[string]any{
		"id": itoa(ev.id), "org_id": ev.orgID, "date": ev.date, "info": ev.info, "user_id": "1",
		"uuid": ev.uuid, "published": ev.published, "analysis": ev.analysis,
		"attribute_count": strconv.Itoa(count), "orgc_id": ev.orgcID, "timestamp": itoa(ev.timestamp),
		"distribution": ev.distribution, "sharing_group_id": ev.sharingGroupID,
		"proposal_email_lock": false, "locked": false, "threat_level_id": ev.threatLevelID,
		"publish_timestamp": itoa(ev.publishTimestamp), "sighting_timestamp": "0",
		"disable_correlation": false, "extends_uuid": "", "protected": nil,
	}
	delete(m.events, eventUUID)
	m.mu.Unlock()
	payload, err := marshalPHP(map[string]any{"Event": row, "action": "delete"})
	if err != nil {
		return fmt.Errorf("encode delete notification: %w", err)
	}
	if err := pub.Publish("misp_json_event", payload); err != nil {
		return fmt.Errorf("publish deletion of event %s on misp_json_event: %w", eventUUID, err)
	}
	return nil
}

// WebhookBody returns the body MISP's workflow webhook module sends for the event-publish
// trigger with an empty payload template: the event in MISP core format, with
// _AttributeFlattened and per-attribute _allTags.
func (m *MISP) WebhookBody(eventUUID string) ([]byte, error) {
	return m.fetchForPublish(eventUUID, true)
}

// PostWebhook sends the event-publish webhook for an event to url, as Module_webhook does:
// POST, JSON body in core format, MISP's default headers, then header (for example
// Authorization) overriding them. It does not change the event and does not retry. It returns
// the response status code.
func (m *MISP) PostWebhook(ctx context.Context, url string, header http.Header, eventUUID string) (int, error) {
	body, err := m.WebhookBody(eventUUID)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build webhook request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "MISP "+m.opts.Version+" - #"+webhookCommit)
	for k, vs := range header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post webhook for event %s: %w", eventUUID, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("post webhook for event %s: status %d", eventUUID, resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// fetchForPublish encodes the event as Event::fetchEvent does for publishing: soft-deleted
// attributes left out, objects without attributes dropped.
func (m *MISP) fetchForPublish(eventUUID string, core bool) ([]byte, error) {
	m.mu.Lock()
	ev, ok := m.events[eventUUID]
	if ok {
		ev = ev.clone()
	}
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("event %s not found", eventUUID)
	}
	body, err := wrapEvent(ev, encodeOptions{core: core, keep: func(a *attribute) bool { return !a.deleted }})
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", eventUUID, err)
	}
	return body, nil
}
