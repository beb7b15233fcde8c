package apigw

import (
	"context"
	"fmt"
	"strings"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/store"
)

// Lookup returns everything needed to serve requests to the API apiID of account, read in one
// transaction, or kept from an earlier Lookup when nothing has been written since. The snapshot is
// shared: callers must not modify it. An API that does not exist is an error wrapping
// errdefs.ErrNotFound.
func (s *Service) Lookup(ctx context.Context, account, apiID string) (*Snapshot, error) {
	key := account + "/" + apiID
	gen := s.gen.Load()
	if c, ok := s.snapshots.Load(key); ok && c.(cachedSnapshot).gen == gen {
		return c.(cachedSnapshot).snap, nil
	}
	snap, err := s.lookup(ctx, account, apiID)
	if err != nil {
		s.snapshots.Delete(key)
		return nil, err
	}
	s.snapshots.Store(key, cachedSnapshot{gen: gen, snap: snap})
	return snap, nil
}

func (s *Service) lookup(ctx context.Context, account, apiID string) (*Snapshot, error) {
	var snap *Snapshot
	err := s.view(ctx, func(tx store.Tx) error {
		a, ok, err := store.GetJSON[api](tx, s.apiKey(account, apiID))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("apigw: API %s of account %s: %w", apiID, account, errdefs.ErrNotFound)
		}
		snap = &Snapshot{API: API{ID: a.APIID, Name: a.Name, ProtocolType: a.ProtocolType, Cors: a.CorsConfiguration,
			DisableExecuteAPIEndpoint: a.DisableExecuteAPIEndpoint}}
		routes, err := listJSON[route](tx, s.childPrefix(account, kindRoute, apiID))
		if err != nil {
			return err
		}
		ints, err := listJSON[integration](tx, s.childPrefix(account, kindIntegration, apiID))
		if err != nil {
			return err
		}
		snap.Routes, snap.Integrations = exportRoutes(routes), exportIntegrations(ints)
		stages, err := listJSON[stage](tx, s.childPrefix(account, kindStage, apiID))
		if err != nil {
			return err
		}
		for _, st := range stages {
			out := Stage{Name: st.StageName, AutoDeploy: st.AutoDeploy, StageVariables: st.StageVariables,
				DefaultRouteSettings: st.DefaultRouteSettings, RouteSettings: st.RouteSettings, DeploymentID: st.DeploymentID}
			if st.DeploymentID != "" {
				d, ok, err := store.GetJSON[deploymentRecord](tx, s.childKey(account, kindDeployment, apiID, st.DeploymentID))
				if err != nil {
					return err
				}
				if ok {
					out.Deployment = &Deployment{ID: d.Deployment.DeploymentID, Routes: exportRoutes(d.Routes),
						Integrations: exportIntegrations(d.Integrations), Authorizers: exportAuthorizers(d.Authorizers), Cors: d.Cors}
				}
			}
			snap.Stages = append(snap.Stages, out)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return snap, nil
}

func exportRoutes(rs []route) []Route {
	out := make([]Route, len(rs))
	for i, r := range rs {
		out[i] = Route{ID: r.RouteID, Key: r.RouteKey, IntegrationID: strings.TrimPrefix(r.Target, "integrations/"),
			AuthorizationType: r.AuthorizationType, AuthorizerID: r.AuthorizerID}
	}
	return out
}

func exportIntegrations(is []integration) []Integration {
	out := make([]Integration, len(is))
	for i, it := range is {
		out[i] = Integration{ID: it.IntegrationID, URI: it.IntegrationURI, FunctionARN: FunctionARN(it.IntegrationURI),
			PayloadFormatVersion: it.PayloadFormatVersion, TimeoutInMillis: it.TimeoutInMillis, CredentialsARN: it.CredentialsArn}
	}
	return out
}
