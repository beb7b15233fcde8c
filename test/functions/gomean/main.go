// Command gomean is a Lambda function written with github.com/aws/aws-lambda-go, as a user would
// write it, for the tests that run it unchanged under the provided.al2023 runtime: it returns the
// mean of the event's numbers, like the Python walkthrough's calculate_mean.
package main

import (
	"context"
	"errors"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Nums []float64 `json:"nums"`
}

type response struct {
	StatusCode int     `json:"statusCode"`
	Body       float64 `json:"body"`
	RequestID  string  `json:"requestId"`
}

func handle(ctx context.Context, e event) (response, error) {
	if len(e.Nums) == 0 {
		return response{}, errors.New("no numbers")
	}
	sum := 0.0
	for _, n := range e.Nums {
		sum += n
	}
	lc, _ := lambdacontext.FromContext(ctx)
	return response{StatusCode: 200, Body: sum / float64(len(e.Nums)), RequestID: lc.AwsRequestID}, nil
}

func main() { lambda.Start(handle) }
