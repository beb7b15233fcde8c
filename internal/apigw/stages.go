package apigw

import (
	"context"
	"regexp"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// defaultStage is the stage served at the root of an API's endpoint.
const defaultStage = "$default"

var (
	stageNamePattern    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	stageVariableName   = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	maxStageVariableLen = 2048
)

func validateStageName(name string) error {
	if name == defaultStage || stageNamePattern.MatchString(name) {
		return nil
	}
	return badRequest("Invalid stage name specified: %q. A stage name is $default or 1 to 128 letters, digits, hyphens and underscores.", name)
}

type routeSettingsInput struct {
	DataTraceEnabled       *bool    `json:"dataTraceEnabled"`
	DetailedMetricsEnabled *bool    `json:"detailedMetricsEnabled"`
	LoggingLevel           *string  `json:"loggingLevel"`
	ThrottlingBurstLimit   *int     `json:"throttlingBurstLimit"`
	ThrottlingRateLimit    *float64 `json:"throttlingRateLimit"`
}

// merge sets the settings in gives on rs.
func (in routeSettingsInput) merge(rs *RouteSettings) error {
	if in.DataTraceEnabled != nil && *in.DataTraceEnabled || in.LoggingLevel != nil && *in.LoggingLevel != "" && *in.LoggingLevel != "OFF" {
		return badRequest("Execution logs are not supported on protocolType HTTP")
	}
	if in.LoggingLevel != nil {
		rs.LoggingLevel = *in.LoggingLevel
	}
	if in.DetailedMetricsEnabled != nil {
		rs.DetailedMetricsEnabled = *in.DetailedMetricsEnabled
	}
	if b := in.ThrottlingBurstLimit; b != nil {
		if *b < 0 {
			return badRequest("Invalid throttling burst limit specified: %d. It must be 0 or more.", *b)
		}
		rs.ThrottlingBurstLimit = b
	}
	if v := in.ThrottlingRateLimit; v != nil {
		if *v < 0 {
			return badRequest("Invalid throttling rate limit specified: %v. It must be 0 or more.", *v)
		}
		rs.ThrottlingRateLimit = v
	}
	return nil
}

type stageInput struct {
	AccessLogSettings    *AccessLogSettings            `json:"accessLogSettings"`
	AutoDeploy           *bool                         `json:"autoDeploy"`
	ClientCertificateID  *string                       `json:"clientCertificateId"`
	DefaultRouteSettings *routeSettingsInput           `json:"defaultRouteSettings"`
	DeploymentID         *string                       `json:"deploymentId"`
	Description          *string                       `json:"description"`
	RouteSettings        map[string]routeSettingsInput `json:"routeSettings"`
	StageName            *string                       `json:"stageName"`
	StageVariables       map[string]string             `json:"stageVariables"`
	Tags                 map[string]string             `json:"tags"`
}

// applyStage sets the members in gives on st and checks them against the API's routes and
// deployments. Stage variables and route settings are merged into the stage's: a variable set
// to "" is removed.
func (s *Service) applyStage(tx store.Tx, acct, apiID string, in stageInput, st *stage) error {
	if in.ClientCertificateID != nil {
		return badRequest("Client certificates are supported only for REST APIs and WebSocket APIs.")
	}
	if in.AutoDeploy != nil {
		st.AutoDeploy = *in.AutoDeploy
	}
	setString(&st.Description, in.Description)
	if len(st.Description) > 1024 {
		return badRequest("Invalid description: it must be at most 1024 characters long.")
	}
	if in.AccessLogSettings != nil {
		st.AccessLogSettings = in.AccessLogSettings
		if len(st.AccessLogSettings.Format) > 1024 {
			return badRequest("Invalid access log format: it must be at most 1024 characters long.")
		}
	}
	if in.DefaultRouteSettings != nil {
		if err := in.DefaultRouteSettings.merge(&st.DefaultRouteSettings); err != nil {
			return err
		}
	}
	if len(in.RouteSettings) > 0 {
		routes, err := listJSON[route](tx, s.childPrefix(acct, kindRoute, apiID))
		if err != nil {
			return err
		}
		keys := map[string]bool{}
		for _, rt := range routes {
			keys[rt.RouteKey] = true
		}
		for key, rin := range in.RouteSettings {
			if !keys[key] {
				return badRequest("Unable to find Route by key %s within the provided RouteSettings", key)
			}
			rs := st.RouteSettings[key]
			if err := rin.merge(&rs); err != nil {
				return err
			}
			st.RouteSettings[key] = rs
		}
	}
	for k, v := range in.StageVariables {
		if !stageVariableName.MatchString(k) {
			return badRequest("Invalid stage variable name specified: %q. Names are 1 to 64 letters, digits and underscores.", k)
		}
		if len(v) > maxStageVariableLen {
			return badRequest("Invalid value of stage variable %s: it must be at most %d characters long.", k, maxStageVariableLen)
		}
		if v == "" {
			delete(st.StageVariables, k)
		} else {
			st.StageVariables[k] = v
		}
	}
	if in.DeploymentID != nil && *in.DeploymentID != st.DeploymentID {
		if st.AutoDeploy {
			return badRequest("A deployment cannot be set on a stage with autoDeploy enabled: its deployments are made automatically.")
		}
		d, ok, err := store.GetJSON[deploymentRecord](tx, s.childKey(acct, kindDeployment, apiID, *in.DeploymentID))
		if err != nil {
			return err
		}
		if !ok {
			return deploymentNotFound(acct, *in.DeploymentID)
		}
		st.DeploymentID = d.Deployment.DeploymentID
		st.LastDeploymentStatusMessage = ""
	}
	return nil
}

func (s *Service) createStage(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in stageInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.StageName == nil {
		return 0, nil, badRequest("Stage name is required.")
	}
	if err := validateStageName(*in.StageName); err != nil {
		return 0, nil, err
	}
	if err := validateTags(in.Tags); err != nil {
		return 0, nil, err
	}
	acct, apiID := r.Caller.AccountID, r.HTTP.PathValue("apiId")
	var st stage
	err := s.update(ctx, func(tx store.Tx) error {
		now := timestamp(s.now())
		st = stage{StageName: *in.StageName, CreatedDate: now, LastUpdatedDate: now, Tags: map[string]string{},
			RouteSettings: map[string]RouteSettings{}, StageVariables: map[string]string{}}
		for k, v := range in.Tags {
			st.Tags[k] = v
		}
		if _, err := s.loadAPI(tx, acct, apiID); err != nil {
			return err
		}
		if err := s.applyStage(tx, acct, apiID, in, &st); err != nil {
			return err
		}
		key := s.childKey(acct, kindStage, apiID, st.StageName)
		if _, ok, err := store.GetJSON[stage](tx, key); err != nil || ok {
			if err == nil {
				err = conflict("Stage %s already exists", st.StageName)
			}
			return err
		}
		if err := checkQuota(tx, s.childPrefix(acct, kindStage, apiID), maxStages, "Stages", "this API"); err != nil {
			return err
		}
		if st.AutoDeploy {
			if err := s.deployStage(tx, acct, apiID, &st); err != nil {
				return err
			}
		}
		return createJSON(tx, key, st)
	})
	if err != nil {
		return 0, nil, err
	}
	return 201, st, nil
}

func (s *Service) loadStage(tx store.Tx, acct, apiID, name string) (stage, error) {
	return loadChild[stage](s, tx, acct, apiID, kindStage, name, stageNotFound(acct, apiID, name))
}

func (s *Service) getStage(ctx context.Context, r *awsproto.Request) (int, any, error) {
	v, err := getOne(ctx, s, r, "stageName", s.loadStage)
	if err != nil {
		return 0, nil, err
	}
	return 200, v, nil
}

func (s *Service) getStages(ctx context.Context, r *awsproto.Request) (int, any, error) {
	return getChildren[stage](ctx, s, r, kindStage)
}

func (s *Service) updateStage(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in stageInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.Tags != nil {
		return 0, nil, badRequest("Tags cannot be updated with UpdateStage; use TagResource and UntagResource.")
	}
	acct, apiID, name := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("stageName")
	var st stage
	err := s.update(ctx, func(tx store.Tx) error {
		var err error
		if st, err = s.loadStage(tx, acct, apiID, name); err != nil {
			return err
		}
		wasAuto := st.AutoDeploy
		if err := s.applyStage(tx, acct, apiID, in, &st); err != nil {
			return err
		}
		st.LastUpdatedDate = timestamp(s.now())
		if st.AutoDeploy && !wasAuto {
			if err := s.deployStage(tx, acct, apiID, &st); err != nil {
				return err
			}
		}
		return store.PutJSON(tx, s.childKey(acct, kindStage, apiID, name), st)
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, st, nil
}

func (s *Service) deleteStage(ctx context.Context, r *awsproto.Request) (int, any, error) {
	acct, apiID, name := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("stageName")
	err := s.update(ctx, func(tx store.Tx) error {
		st, err := s.loadStage(tx, acct, apiID, name)
		if err != nil {
			return err
		}
		if st.APIGatewayManaged {
			return badRequest("A stage managed by API Gateway cannot be deleted; delete the API instead.")
		}
		return tx.Delete(s.childKey(acct, kindStage, apiID, name))
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

func (s *Service) deleteRouteSettings(ctx context.Context, r *awsproto.Request) (int, any, error) {
	acct, apiID, name := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("stageName")
	key := r.HTTP.PathValue("routeKey")
	err := s.update(ctx, func(tx store.Tx) error {
		st, err := s.loadStage(tx, acct, apiID, name)
		if err != nil {
			return err
		}
		if _, ok := st.RouteSettings[key]; !ok {
			return notFound("Unable to find route settings for route key %s in stage %s", key, name)
		}
		delete(st.RouteSettings, key)
		st.LastUpdatedDate = timestamp(s.now())
		return store.PutJSON(tx, s.childKey(acct, kindStage, apiID, name), st)
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}
