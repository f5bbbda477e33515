package sentinel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// RetryOptions tune Deliver's exponential backoff for errors that name no wait.
type RetryOptions struct {
	// InitialInterval is the first backoff; default 1 s.
	InitialInterval time.Duration
	// MaxInterval caps the backoff; default 60 s.
	MaxInterval time.Duration
	// Notify, when set, is called with each retryable error and the wait before the next
	// attempt (for logs and metrics).
	Notify func(err error, wait time.Duration)
}

// Deliver calls u.Upload until it succeeds, fails fatally or ctx ends. It is the one retry
// loop: retryable errors are retried without limit, after err.After when Sentinel named a
// wait and otherwise after an exponential backoff with a cap; nothing is ever skipped.
// It returns Upload's result, a *FatalError or other non-retryable error from Upload, or,
// when ctx ends first, an error wrapping the context's cause whose message names the last
// upload error.
func Deliver(ctx context.Context, u Uploader, objects []json.RawMessage, opts RetryOptions) (UploadResult, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = time.Second
	if opts.InitialInterval > 0 {
		b.InitialInterval = opts.InitialInterval
	}
	b.MaxInterval = time.Minute
	if opts.MaxInterval > 0 {
		b.MaxInterval = opts.MaxInterval
	}
	var last error
	op := func() (UploadResult, error) {
		res, err := u.Upload(ctx, objects)
		if err == nil {
			return res, nil
		}
		last = err
		var re *RetryableError
		if !errors.As(err, &re) {
			return res, backoff.Permanent(err)
		}
		if re.After > 0 {
			return res, waitFor{err: err, after: &backoff.RetryAfterError{Duration: re.After}}
		}
		return res, err
	}
	retryOpts := []backoff.RetryOption{backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0)}
	if opts.Notify != nil {
		retryOpts = append(retryOpts, backoff.WithNotify(func(err error, wait time.Duration) {
			var w waitFor
			if errors.As(err, &w) {
				err = w.err
			}
			opts.Notify(err, wait)
		}))
	}
	res, err := backoff.Retry(ctx, op, retryOpts...)
	if err != nil {
		if ctx.Err() != nil && last != nil && !errors.Is(last, err) {
			return UploadResult{}, fmt.Errorf("deliver batch of %d objects: %w (last attempt: %v)", len(objects), err, last)
		}
		return UploadResult{}, err
	}
	return res, nil
}

// waitFor carries a retryable error together with backoff's instruction to wait a given time.
type waitFor struct {
	err   error
	after *backoff.RetryAfterError
}

func (w waitFor) Error() string   { return w.err.Error() }
func (w waitFor) Unwrap() []error { return []error{w.err, w.after} }
