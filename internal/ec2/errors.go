package ec2

import (
	"fmt"

	"github.com/nubis/nubis/internal/awsproto"
)

// EC2 answers every client error with HTTP 400 and a code naming what is wrong.
func clientError(code, format string, args ...any) *awsproto.Error {
	return &awsproto.Error{Status: 400, Code: code, Message: fmt.Sprintf(format, args...)}
}

func missingParameter(name string) *awsproto.Error {
	return clientError("MissingParameter", "The request must contain the parameter %s", name)
}

func invalidValue(param, value, why string) *awsproto.Error {
	return clientError("InvalidParameterValue", "Value (%s) for parameter %s is invalid. %s", value, param, why)
}

// errDryRun is what a DryRun request that would have succeeded gets.
var errDryRun = &awsproto.Error{Status: 412, Code: "DryRunOperation",
	Message: "Request would have succeeded, but DryRun flag is set."}
