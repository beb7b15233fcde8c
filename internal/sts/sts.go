// Package sts is nubis's AWS Security Token Service: the Query-protocol API that tells a caller who
// it is (GetCallerIdentity).
package sts

import (
	"context"
	"log/slog"

	"github.com/nubis/nubis/internal/awsproto"
)

// API returns the STS API for the server to route to.
func API(log *slog.Logger) awsproto.Service {
	return &awsproto.QueryService{
		Name:      "sts",
		Version:   "2011-06-15",
		Namespace: "https://sts.amazonaws.com/doc/2011-06-15/",
		Flavor:    awsproto.FlavorQuery,
		Log:       log,
		Actions: map[string]awsproto.QueryHandler{
			"GetCallerIdentity": getCallerIdentity,
		},
	}
}

type callerIdentity struct {
	Arn     string `xml:"Arn"`
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
}

func getCallerIdentity(_ context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in struct{}
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	return callerIdentity{Arn: r.Caller.ARN, UserID: r.Caller.UserID, Account: r.Caller.AccountID}, nil
}
