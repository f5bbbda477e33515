package listener

// This file is the only one that knows echo. Moving to echo v5 means rewriting newRouter.

import (
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// newRouter routes the webhook path, /healthz and /readyz to w. Every error, echo's own 404 and
// 405 included, is answered with a JSON body {"error": "..."}.
func newRouter(w *Webhook) http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(io.Discard)
	// No proxy is assumed in front: never trust X-Forwarded-For from clients.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code, msg := http.StatusInternalServerError, "internal error"
		var he *echo.HTTPError
		if errors.As(err, &he) {
			code = he.Code
			msg = http.StatusText(code)
			if s, ok := he.Message.(string); ok {
				msg = s
			}
		} else {
			w.log.WithError(err).Error("webhook request failed")
		}
		_ = c.JSON(code, replyError(msg))
	}
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			w.log.WithError(err).WithField("path", c.Path()).Error("panic in webhook handler")
			return echo.NewHTTPError(http.StatusInternalServerError, "internal error")
		},
	}))

	e.POST(w.cfg.Path, func(c echo.Context) error {
		code, reply := w.receive(c.Response(), c.Request())
		return c.JSON(code, reply)
	})
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, webhookReply{Status: "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		code, reply := w.readiness()
		return c.JSON(code, reply)
	})
	return e
}
