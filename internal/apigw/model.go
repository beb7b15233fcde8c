package apigw

// The records below are kept in the store as they are rendered on the wire: the JSON names are
// the apigatewayv2 locationNames.

// Cors is an API's CORS configuration.
type Cors struct {
	AllowCredentials bool     `json:"allowCredentials"`
	AllowHeaders     []string `json:"allowHeaders,omitempty"`
	AllowMethods     []string `json:"allowMethods,omitempty"`
	AllowOrigins     []string `json:"allowOrigins,omitempty"`
	ExposeHeaders    []string `json:"exposeHeaders,omitempty"`
	// MaxAge is how many seconds browsers may cache a preflight response (-1 disables caching;
	// nil when not set).
	MaxAge *int `json:"maxAge,omitempty"`
}

// RouteSettings are a stage's settings for its routes, or for one route.
type RouteSettings struct {
	DataTraceEnabled       bool   `json:"dataTraceEnabled,omitempty"`
	DetailedMetricsEnabled bool   `json:"detailedMetricsEnabled"`
	LoggingLevel           string `json:"loggingLevel,omitempty"`
	// ThrottlingBurstLimit and ThrottlingRateLimit (requests per second) are nil when not set.
	ThrottlingBurstLimit *int     `json:"throttlingBurstLimit,omitempty"`
	ThrottlingRateLimit  *float64 `json:"throttlingRateLimit,omitempty"`
}

// AccessLogSettings are where and how a stage's access logs are written.
type AccessLogSettings struct {
	DestinationArn string `json:"destinationArn,omitempty"`
	Format         string `json:"format,omitempty"`
}

// api is an API as stored and returned; ApiEndpoint is filled in when it is returned.
type api struct {
	APIEndpoint               string            `json:"apiEndpoint,omitempty"`
	APIID                     string            `json:"apiId"`
	APIKeySelectionExpression string            `json:"apiKeySelectionExpression"`
	CorsConfiguration         *Cors             `json:"corsConfiguration,omitempty"`
	CreatedDate               string            `json:"createdDate"`
	Description               string            `json:"description,omitempty"`
	DisableExecuteAPIEndpoint bool              `json:"disableExecuteApiEndpoint"`
	Name                      string            `json:"name"`
	ProtocolType              string            `json:"protocolType"`
	RouteSelectionExpression  string            `json:"routeSelectionExpression"`
	Tags                      map[string]string `json:"tags"`
	Version                   string            `json:"version,omitempty"`
}

type route struct {
	APIGatewayManaged   bool     `json:"apiGatewayManaged,omitempty"`
	APIKeyRequired      bool     `json:"apiKeyRequired"`
	AuthorizationScopes []string `json:"authorizationScopes,omitempty"`
	AuthorizationType   string   `json:"authorizationType"`
	AuthorizerID        string   `json:"authorizerId,omitempty"`
	OperationName       string   `json:"operationName,omitempty"`
	RouteID             string   `json:"routeId"`
	RouteKey            string   `json:"routeKey"`
	Target              string   `json:"target,omitempty"`
}

type integration struct {
	APIGatewayManaged    bool   `json:"apiGatewayManaged,omitempty"`
	ConnectionType       string `json:"connectionType"`
	CredentialsArn       string `json:"credentialsArn,omitempty"`
	Description          string `json:"description,omitempty"`
	IntegrationID        string `json:"integrationId"`
	IntegrationMethod    string `json:"integrationMethod"`
	IntegrationType      string `json:"integrationType"`
	IntegrationURI       string `json:"integrationUri"`
	PayloadFormatVersion string `json:"payloadFormatVersion"`
	TimeoutInMillis      int    `json:"timeoutInMillis"`
}

type stage struct {
	AccessLogSettings           *AccessLogSettings       `json:"accessLogSettings,omitempty"`
	APIGatewayManaged           bool                     `json:"apiGatewayManaged,omitempty"`
	AutoDeploy                  bool                     `json:"autoDeploy"`
	CreatedDate                 string                   `json:"createdDate"`
	DefaultRouteSettings        RouteSettings            `json:"defaultRouteSettings"`
	DeploymentID                string                   `json:"deploymentId,omitempty"`
	Description                 string                   `json:"description,omitempty"`
	LastDeploymentStatusMessage string                   `json:"lastDeploymentStatusMessage,omitempty"`
	LastUpdatedDate             string                   `json:"lastUpdatedDate"`
	RouteSettings               map[string]RouteSettings `json:"routeSettings"`
	StageName                   string                   `json:"stageName"`
	StageVariables              map[string]string        `json:"stageVariables"`
	Tags                        map[string]string        `json:"tags"`
}

type deployment struct {
	AutoDeployed            bool   `json:"autoDeployed"`
	CreatedDate             string `json:"createdDate"`
	DeploymentID            string `json:"deploymentId"`
	DeploymentStatus        string `json:"deploymentStatus"`
	DeploymentStatusMessage string `json:"deploymentStatusMessage,omitempty"`
	Description             string `json:"description,omitempty"`
}

// deploymentRecord is a deployment as stored: with the routes, integrations and CORS
// configuration of the API when it was made, which is what a stage on it serves.
type deploymentRecord struct {
	Deployment   deployment    `json:"deployment"`
	Routes       []route       `json:"routes"`
	Integrations []integration `json:"integrations"`
	Authorizers  []authorizer  `json:"authorizers,omitempty"`
	Cors         *Cors         `json:"cors,omitempty"`
}

// Snapshot is everything the data plane needs to serve requests to one API.
type Snapshot struct {
	API API
	// Routes and Integrations are the API's current configuration. A stage serves the
	// configuration of its deployment (Stage.Deployment), which is the same for an autoDeploy
	// stage once the automatic deployment of the last change has been made.
	Routes       []Route
	Integrations []Integration
	Stages       []Stage
}

// API is an API as the data plane sees it.
type API struct {
	ID           string
	Name         string
	ProtocolType string // HTTP
	// Cors is the current CORS configuration (nil for none).
	Cors *Cors
	// DisableExecuteAPIEndpoint is set when clients may not call the API's default endpoint.
	DisableExecuteAPIEndpoint bool
}

// Route is a route as the data plane sees it.
type Route struct {
	ID string
	// Key is "$default" or "METHOD /path" (ParseRouteKey splits it).
	Key string
	// IntegrationID is the integration the route's target names ("" for a route without one).
	IntegrationID string
	// AuthorizationType is NONE, AWS_IAM or CUSTOM (AuthorizerID's Lambda authorizer).
	AuthorizationType string
	AuthorizerID      string
}

// Authorizer is a Lambda (REQUEST) authorizer as the data plane sees it.
type Authorizer struct {
	ID                   string
	FunctionARN          string
	PayloadFormatVersion string // "1.0" or "2.0"
	// SimpleResponses: the function answers {"isAuthorized": bool, "context": {...}} (2.0 only),
	// else an IAM policy.
	SimpleResponses bool
	// IdentitySource are the values a request must carry, and the key of cached results.
	IdentitySource []string
	TTLSeconds     int
}

// Integration is an integration as the data plane sees it.
type Integration struct {
	ID string
	// URI is the integration URI as given (a function ARN or an apigateway invocation ARN);
	// FunctionARN is the Lambda function ARN it names, with its qualifier if it has one.
	URI                  string
	FunctionARN          string
	PayloadFormatVersion string // "1.0" or "2.0"
	TimeoutInMillis      int
	CredentialsARN       string
}

// Stage is a stage as the data plane sees it.
type Stage struct {
	Name           string // "$default" or a name
	AutoDeploy     bool
	StageVariables map[string]string
	// DefaultRouteSettings and RouteSettings (by route key) carry the throttling limits.
	DefaultRouteSettings RouteSettings
	RouteSettings        map[string]RouteSettings
	// DeploymentID is the stage's deployment; Deployment holds what it deployed. Both are empty
	// for a stage that has not been deployed, which serves nothing.
	DeploymentID string
	Deployment   *Deployment
}

// Deployment is what a deployment made live: the API's routes, integrations and CORS
// configuration at the time.
type Deployment struct {
	ID           string
	Routes       []Route
	Integrations []Integration
	Authorizers  []Authorizer
	Cors         *Cors
}
