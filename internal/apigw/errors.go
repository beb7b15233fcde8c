package apigw

import (
	"fmt"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

func badRequest(format string, args ...any) error {
	return awsproto.Errorf(400, "BadRequestException", format, args...)
}

func notFound(format string, args ...any) error {
	return awsproto.Errorf(404, "NotFoundException", format, args...)
}

func conflict(format string, args ...any) error {
	return awsproto.Errorf(409, "ConflictException", format, args...)
}

// apiNotFound is AWS's answer for an API id that is not the caller's: the id is qualified by the
// account, as AWS's message is.
func apiNotFound(account, apiID string) error {
	return notFound("Invalid API identifier specified %s:%s", account, apiID)
}

func routeNotFound(account, routeID string) error {
	return notFound("Invalid Route identifier specified %s:%s", account, routeID)
}

func integrationNotFound(account, integrationID string) error {
	return notFound("Invalid Integration identifier specified %s:%s", account, integrationID)
}

func stageNotFound(account, apiID, stage string) error {
	return notFound("Invalid stage identifier specified %s:%s:%s", account, apiID, stage)
}

func deploymentNotFound(account, deploymentID string) error {
	return notFound("Invalid Deployment identifier specified %s:%s", account, deploymentID)
}

// unsupported is the answer for a feature of API Gateway that nubis does not have.
func unsupported(what string) error {
	return badRequest("%s is not supported by nubis yet.", what)
}

// webSocketOnly is the answer for a member that only WebSocket APIs have.
func webSocketOnly(member string) error {
	return badRequest("%s is supported only for WebSocket APIs.", member)
}

// Quotas of HTTP APIs, as AWS's defaults.
const (
	maxAPIs         = 600 // per account and region
	maxRoutes       = 300 // per API
	maxIntegrations = 300 // per API
	maxStages       = 10  // per API
)

// checkQuota returns TooManyRequestsException when prefix already holds limit records; what
// names them ("Routes") and where ("this API").
func checkQuota(tx store.Tx, prefix string, limit int, what, where string) error {
	kvs, err := tx.List(prefix, "", limit)
	if err != nil || len(kvs) < limit {
		return err
	}
	return &awsproto.Error{Status: 429, Code: "TooManyRequestsException",
		Message: fmt.Sprintf("Maximum number of %s for %s has been reached. Please contact AWS if you need additional %s.", what, where, what),
		Fields:  map[string]string{"limitType": what}}
}
