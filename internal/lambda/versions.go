package lambda

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// publish makes a numbered version from $LATEST, or returns the last published version when
// nothing changed since it (as Lambda does). fn.LastVersion is advanced; the caller stores fn.
func (s *Service) publish(tx store.Tx, r *awsproto.Request, fn *function, latest version, description string) (version, error) {
	if fn.LastVersion > 0 {
		last, ok, err := store.GetJSON[version](tx, s.versionKey(r, fn.Name, strconv.Itoa(fn.LastVersion)))
		if err != nil {
			return version{}, err
		}
		if ok && last.CodeHex == latest.CodeHex && sameConfig(last.Config, latest.Config) {
			return last, nil
		}
	}
	fn.LastVersion++
	v := latest
	num := strconv.Itoa(fn.LastVersion)
	v.Config.Version = num
	v.Config.FunctionArn = s.functionARN(r, fn.Name) + ":" + num
	v.Config.Description = description
	v.Config.RevisionID = newRevision()
	if err := store.PutJSON(tx, s.versionKey(r, fn.Name, num), v); err != nil {
		return version{}, err
	}
	return v, nil
}

// sameConfig compares what a published version freezes.
func sameConfig(a, b FunctionConfiguration) bool {
	a.Version, a.FunctionArn, a.RevisionID, a.LastModified, a.Description = "", "", "", "", ""
	b.Version, b.FunctionArn, b.RevisionID, b.LastModified, b.Description = "", "", "", "", ""
	a.State, a.StateReason, a.StateReasonCode, a.LastUpdateStatus, a.LastUpdateReason, a.LastUpdateCode = "", "", "", "", "", ""
	b.State, b.StateReason, b.StateReasonCode, b.LastUpdateStatus, b.LastUpdateReason, b.LastUpdateCode = "", "", "", "", "", ""
	ja, _ := jsonBytes(a)
	jb, _ := jsonBytes(b)
	return string(ja) == string(jb)
}

type publishInput struct {
	CodeSha256  string
	Description *string
	RevisionId  string
}

func (s *Service) publishVersion(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	var in publishInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.Description != nil {
		if err := validateDescription(*in.Description); err != nil {
			return 0, nil, err
		}
	}
	var out FunctionConfiguration
	err = s.store.Update(ctx, func(tx store.Tx) error {
		fn, latest, err := s.latestForUpdate(tx, r, f, in.RevisionId)
		if err != nil {
			return err
		}
		if in.CodeSha256 != "" && in.CodeSha256 != latest.Config.CodeSha256 {
			return invalidParam("CodeSHA256 (%s) is different from current CodeSHA256 in $LATEST (%s). Please try again with the CodeSHA256 in $LATEST.", in.CodeSha256, latest.Config.CodeSha256)
		}
		desc := latest.Config.Description
		if in.Description != nil {
			desc = *in.Description
		}
		v, err := s.publish(tx, r, &fn, latest, desc)
		if err != nil {
			return err
		}
		out = v.Config
		return store.PutJSON(tx, s.functionKey(r, f.name), fn)
	})
	if err != nil {
		return 0, nil, err
	}
	return 201, out, nil
}

type listVersionsOutput struct {
	Versions   []FunctionConfiguration `json:"Versions"`
	NextMarker string                  `json:"NextMarker,omitempty"`
}

func (s *Service) listVersions(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	marker, max, err := pagination(r.HTTP.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	out := listVersionsOutput{Versions: []FunctionConfiguration{}}
	err = s.view(ctx, func(tx store.Tx) error {
		if _, err := s.requireFunction(tx, r, f); err != nil {
			return err
		}
		after, err := afterMarker(marker, s.versionsPrefix(r, f.name))
		if err != nil {
			return err
		}
		kvs, err := tx.List(s.versionsPrefix(r, f.name), after, max+1)
		if err != nil {
			return err
		}
		for i, kv := range kvs {
			if i == max {
				out.NextMarker = encodeMarker(versionSuffix(out.Versions[max-1].Version))
				break
			}
			var v version
			if err := jsonUnmarshal(kv.Value, &v); err != nil {
				return fmt.Errorf("%s: %w", kv.Key, err)
			}
			out.Versions = append(out.Versions, v.Config)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, out, nil
}
