package apigw

import (
	"context"
	"errors"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

const (
	autoDeployDescription = "Automatic deployment triggered by changes to the Api configuration"
	noRoutesMessage       = "Unable to deploy API because no routes exist in this API"
)

// errNoRoutes is the answer to deploying an API that has no routes.
var errNoRoutes = badRequest(noRoutesMessage)

// newDeployment stores a deployment of the API's current routes, integrations and CORS
// configuration, and returns it.
func (s *Service) newDeployment(tx store.Tx, acct, apiID string, auto bool, description string) (deployment, error) {
	a, err := s.loadAPI(tx, acct, apiID)
	if err != nil {
		return deployment{}, err
	}
	rec := deploymentRecord{Deployment: deployment{AutoDeployed: auto, CreatedDate: timestamp(s.now()),
		DeploymentStatus: "DEPLOYED", Description: description}, Cors: a.CorsConfiguration}
	if rec.Routes, err = listJSON[route](tx, s.childPrefix(acct, kindRoute, apiID)); err != nil {
		return deployment{}, err
	}
	if len(rec.Routes) == 0 {
		return deployment{}, errNoRoutes
	}
	if rec.Integrations, err = listJSON[integration](tx, s.childPrefix(acct, kindIntegration, apiID)); err != nil {
		return deployment{}, err
	}
	if rec.Authorizers, err = listJSON[authorizer](tx, s.childPrefix(acct, kindAuthorizer, apiID)); err != nil {
		return deployment{}, err
	}
	rec.Deployment.DeploymentID, err = createWithID(tx, deploymentIDLen,
		func(id string) string { return s.childKey(acct, kindDeployment, apiID, id) },
		func(id string) any { b := rec; b.Deployment.DeploymentID = id; return b })
	return rec.Deployment, err
}

// deployStage deploys the API's current configuration to st, as automatic deployment does. An
// API without routes cannot be deployed: the stage keeps its deployment and says why in its
// lastDeploymentStatusMessage.
func (s *Service) deployStage(tx store.Tx, acct, apiID string, st *stage) error {
	d, err := s.newDeployment(tx, acct, apiID, true, autoDeployDescription)
	if errors.Is(err, errNoRoutes) {
		st.LastDeploymentStatusMessage = noRoutesMessage
		return nil
	}
	if err != nil {
		return err
	}
	st.DeploymentID = d.DeploymentID
	st.LastDeploymentStatusMessage = "Successfully deployed stage with deployment ID '" + d.DeploymentID + "'"
	st.LastUpdatedDate = d.CreatedDate
	return nil
}

// autoDeploy deploys the API's current configuration to each of its stages with autoDeploy on,
// as AWS does after every change to an API.
func (s *Service) autoDeploy(tx store.Tx, acct, apiID string) error {
	stages, err := listJSON[stage](tx, s.childPrefix(acct, kindStage, apiID))
	if err != nil {
		return err
	}
	for _, st := range stages {
		if !st.AutoDeploy {
			continue
		}
		if err := s.deployStage(tx, acct, apiID, &st); err != nil {
			return err
		}
		if err := store.PutJSON(tx, s.childKey(acct, kindStage, apiID, st.StageName), st); err != nil {
			return err
		}
	}
	return nil
}

type deploymentInput struct {
	Description *string `json:"description"`
	StageName   *string `json:"stageName"`
}

func validateDescription(d *string) error {
	if d != nil && len(*d) > 1024 {
		return badRequest("Invalid description: it must be at most 1024 characters long.")
	}
	return nil
}

func (s *Service) createDeployment(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in deploymentInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := validateDescription(in.Description); err != nil {
		return 0, nil, err
	}
	acct, apiID := r.Caller.AccountID, r.HTTP.PathValue("apiId")
	var d deployment
	err := s.update(ctx, func(tx store.Tx) error {
		if _, err := s.loadAPI(tx, acct, apiID); err != nil {
			return err
		}
		var st stage
		if in.StageName != nil {
			var err error
			if st, err = s.loadStage(tx, acct, apiID, *in.StageName); err != nil {
				return err
			}
			if st.AutoDeploy {
				return badRequest("Stage %s has autoDeploy enabled: its deployments are made automatically.", st.StageName)
			}
		}
		desc := ""
		setString(&desc, in.Description)
		var err error
		if d, err = s.newDeployment(tx, acct, apiID, false, desc); err != nil {
			return err
		}
		if in.StageName == nil {
			return nil
		}
		st.DeploymentID = d.DeploymentID
		st.LastUpdatedDate = d.CreatedDate
		st.LastDeploymentStatusMessage = ""
		return store.PutJSON(tx, s.childKey(acct, kindStage, apiID, st.StageName), st)
	})
	if err != nil {
		return 0, nil, err
	}
	return 201, d, nil
}

func (s *Service) loadDeployment(tx store.Tx, acct, apiID, id string) (deploymentRecord, error) {
	return loadChild[deploymentRecord](s, tx, acct, apiID, kindDeployment, id, deploymentNotFound(acct, id))
}

func (s *Service) getDeployment(ctx context.Context, r *awsproto.Request) (int, any, error) {
	d, err := getOne(ctx, s, r, "deploymentId", s.loadDeployment)
	if err != nil {
		return 0, nil, err
	}
	return 200, d.Deployment, nil
}

func (s *Service) getDeployments(ctx context.Context, r *awsproto.Request) (int, any, error) {
	status, out, err := getChildren[deploymentRecord](ctx, s, r, kindDeployment)
	if err != nil {
		return 0, nil, err
	}
	recs := out.(listOutput[deploymentRecord])
	res := listOutput[deployment]{Items: make([]deployment, len(recs.Items)), NextToken: recs.NextToken}
	for i, d := range recs.Items {
		res.Items[i] = d.Deployment
	}
	return status, res, nil
}

func (s *Service) updateDeployment(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in deploymentInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := validateDescription(in.Description); err != nil {
		return 0, nil, err
	}
	if in.StageName != nil {
		return 0, nil, badRequest("StageName cannot be updated on a deployment; set the stage's deploymentId with UpdateStage.")
	}
	acct, apiID, id := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("deploymentId")
	var d deploymentRecord
	err := s.update(ctx, func(tx store.Tx) error {
		var err error
		if d, err = s.loadDeployment(tx, acct, apiID, id); err != nil {
			return err
		}
		setString(&d.Deployment.Description, in.Description)
		return store.PutJSON(tx, s.childKey(acct, kindDeployment, apiID, id), d)
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, d.Deployment, nil
}

func (s *Service) deleteDeployment(ctx context.Context, r *awsproto.Request) (int, any, error) {
	acct, apiID, id := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("deploymentId")
	err := s.update(ctx, func(tx store.Tx) error {
		if _, err := s.loadDeployment(tx, acct, apiID, id); err != nil {
			return err
		}
		stages, err := listJSON[stage](tx, s.childPrefix(acct, kindStage, apiID))
		if err != nil {
			return err
		}
		var users []string
		for _, st := range stages {
			if st.DeploymentID == id {
				users = append(users, st.StageName)
			}
		}
		if len(users) > 0 {
			return badRequest("Active stages pointing to this deployment must be moved or deleted: %s", strings.Join(users, ", "))
		}
		return tx.Delete(s.childKey(acct, kindDeployment, apiID, id))
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}
