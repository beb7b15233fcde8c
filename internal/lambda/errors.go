package lambda

import (
	"github.com/nubis/nubis/internal/awsproto"
)

func invalidParam(format string, args ...any) error {
	return awsproto.Errorf(400, "InvalidParameterValueException", format, args...)
}

// validation is the error AWS's request validation gives for a constraint on one member.
func validation(value any, member, constraint string) error {
	return awsproto.Errorf(400, "ValidationException",
		"1 validation error detected: Value '%v' at '%s' failed to satisfy constraint: %s", value, member, constraint)
}

func notFound(format string, args ...any) error {
	return awsproto.Errorf(404, "ResourceNotFoundException", format, args...)
}

func conflict(format string, args ...any) error {
	return awsproto.Errorf(409, "ResourceConflictException", format, args...)
}

func preconditionFailed(what string) error {
	return awsproto.Errorf(412, "PreconditionFailedException",
		"The Revision Id provided does not match the latest Revision Id. Call the %s API to retrieve the latest Revision Id", what)
}

func functionNotFound(arn string) error { return notFound("Function not found: %s", arn) }

func badJSON(err error) error {
	return awsproto.Errorf(400, "InvalidRequestContentException", "Could not parse request body into json: %v", err)
}
