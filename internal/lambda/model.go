package lambda

import (
	"time"
)

// Wire types, as the Lambda REST-JSON API renders them.

// Environment is a function's environment variables.
type Environment struct {
	Variables map[string]string `json:"Variables"`
}

// EphemeralStorage is the size of a function's /tmp.
type EphemeralStorage struct {
	Size int `json:"Size"`
}

// FunctionConfiguration is one version of a function ($LATEST or a published number).
type FunctionConfiguration struct {
	FunctionName     string            `json:"FunctionName"`
	FunctionArn      string            `json:"FunctionArn"`
	Runtime          string            `json:"Runtime,omitempty"`
	Role             string            `json:"Role"`
	Handler          string            `json:"Handler,omitempty"`
	CodeSize         int64             `json:"CodeSize"`
	Description      string            `json:"Description"`
	Timeout          int               `json:"Timeout"`
	MemorySize       int               `json:"MemorySize"`
	LastModified     string            `json:"LastModified"`
	CodeSha256       string            `json:"CodeSha256"`
	Version          string            `json:"Version"`
	Environment      *Environment      `json:"Environment,omitempty"`
	TracingConfig    map[string]string `json:"TracingConfig"`
	RevisionID       string            `json:"RevisionId"`
	State            string            `json:"State"`
	StateReason      string            `json:"StateReason,omitempty"`
	StateReasonCode  string            `json:"StateReasonCode,omitempty"`
	LastUpdateStatus string            `json:"LastUpdateStatus"`
	LastUpdateReason string            `json:"LastUpdateStatusReason,omitempty"`
	LastUpdateCode   string            `json:"LastUpdateStatusReasonCode,omitempty"`
	PackageType      string            `json:"PackageType"`
	Architectures    []string          `json:"Architectures"`
	EphemeralStorage EphemeralStorage  `json:"EphemeralStorage"`
	SnapStart        map[string]string `json:"SnapStart"`
	LoggingConfig    map[string]string `json:"LoggingConfig"`
	Layers           []LayerRef        `json:"Layers,omitempty"`
}

// Function states and update statuses, as AWS reports them.
const (
	StatePending  = "Pending"
	StateActive   = "Active"
	StateFailed   = "Failed"
	UpdateOK      = "Successful"
	UpdateRunning = "InProgress"
	UpdateFailed  = "Failed"
)

// version is one stored version of a function: its configuration and code.
type version struct {
	Config FunctionConfiguration `json:"config"`
	// CodeHex is the hex SHA-256 of the code zip, the name of its blob.
	CodeHex string `json:"codeHex"`
	// CodeUnzipped is the code's unzipped size (0 for versions stored before it was kept).
	CodeUnzipped int64 `json:"codeUnzipped,omitempty"`
	// LayerHexes are the code blobs of the version's layers, in order: merged, its /opt.
	LayerHexes []string `json:"layerHexes,omitempty"`
	// LayersUnzipped is the layers' unzipped size, all together.
	LayersUnzipped int64 `json:"layersUnzipped,omitempty"`
}

// function is the stored function: what belongs to it across versions.
type function struct {
	Name    string            `json:"name"`
	Created time.Time         `json:"created"`
	Tags    map[string]string `json:"tags,omitempty"`
	// LastVersion is the highest version number published (0: none).
	LastVersion int `json:"lastVersion"`
	// Reserved is the reserved concurrency, nil when the function has none.
	Reserved *int `json:"reserved,omitempty"`
	// Policies are the resource-based policies, by qualifier ("" for the function itself).
	Policies map[string]policy `json:"policies,omitempty"`
	// EventInvoke are the asynchronous invocation settings, by qualifier.
	EventInvoke map[string]eventInvokeConfig `json:"eventInvoke,omitempty"`
}

// AliasConfiguration is an alias as the API renders and stores it.
type AliasConfiguration struct {
	AliasArn        string         `json:"AliasArn"`
	Name            string         `json:"Name"`
	FunctionVersion string         `json:"FunctionVersion"`
	Description     string         `json:"Description"`
	RoutingConfig   *RoutingConfig `json:"RoutingConfig,omitempty"`
	RevisionID      string         `json:"RevisionId"`
}

// RoutingConfig sends a share of an alias's traffic to a second version.
type RoutingConfig struct {
	AdditionalVersionWeights map[string]float64 `json:"AdditionalVersionWeights"`
}

// lastModified formats t as Lambda does: 2026-11-25T19:06:56.123+0000.
func lastModified(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000-0700") }
