package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Instance states, with EC2's codes.
const (
	statePending      = "pending"
	stateRunning      = "running"
	stateShuttingDown = "shutting-down"
	stateTerminated   = "terminated"
	stateStopping     = "stopping"
	stateStopped      = "stopped"
)

var stateCodes = map[string]int{statePending: 0, stateRunning: 16, stateShuttingDown: 32,
	stateTerminated: 48, stateStopping: 64, stateStopped: 80}

// instance is an instance as stored under ec2/<account>/<region>/instance/<id>.
type instance struct {
	ID            string `json:"id"`
	Account       string `json:"account"`
	ReservationID string `json:"reservationId"`
	ImageID       string `json:"imageId"`
	// The image's root at launch: its own layers (top first) over a built-in image's root, so
	// that the instance keeps booting if the image is deregistered.
	ImageLayers []string  `json:"imageLayers,omitempty"`
	BaseImage   string    `json:"baseImage,omitempty"`
	Type        string    `json:"type"`
	KeyName     string    `json:"keyName,omitempty"`
	PublicKey   string    `json:"publicKey,omitempty"` // the key pair's, at launch (as AWS keeps it)
	LaunchIndex int       `json:"launchIndex"`
	LaunchTime  time.Time `json:"launchTime"`
	ClientToken string    `json:"clientToken,omitempty"`

	State            string    `json:"state"`
	StateReason      string    `json:"stateReason,omitempty"` // a code such as Client.UserInitiatedShutdown
	StateReasonMsg   string    `json:"stateReasonMsg,omitempty"`
	TransitionReason string    `json:"transitionReason,omitempty"`
	TerminatedAt     time.Time `json:"terminatedAt,omitzero"`

	Zone      string   `json:"zone"`
	SubnetID  string   `json:"subnetId"`
	VPCID     string   `json:"vpcId"`
	PrivateIP string   `json:"privateIp"`
	MAC       string   `json:"mac"`
	Groups    []string `json:"groups"` // security group ids

	UserData         []byte          `json:"userData,omitempty"`
	Metadata         metadataOptions `json:"metadata"`
	ShutdownBehavior string          `json:"shutdownBehavior"` // stop | terminate
	DisableAPITerm   bool            `json:"disableApiTermination,omitempty"`
	DisableAPIStop   bool            `json:"disableApiStop,omitempty"`

	RootDevice          string    `json:"rootDevice"`
	RootVolumeID        string    `json:"rootVolumeId"`
	RootGiB             int       `json:"rootGiB"`
	RootVolumeType      string    `json:"rootVolumeType"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
	AttachTime          time.Time `json:"attachTime"`
}

type metadataOptions struct {
	HttpTokens           string `json:"httpTokens"`
	HttpEndpoint         string `json:"httpEndpoint"`
	HopLimit             int    `json:"hopLimit"`
	InstanceMetadataTags string `json:"instanceMetadataTags"`
}

func (s *Service) instanceKey(account, id string) string {
	return "ec2/" + account + "/" + s.region + "/instance/" + id
}

func (s *Service) clientTokenKey(account, token string) string {
	return "ec2/" + account + "/" + s.region + "/client-token/" + token
}

func instanceNotFound(id string) error {
	return clientError("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
}

// validInstanceID checks the form of an instance id: i- and 8 or 17 hex digits.
func validInstanceID(id string) bool {
	if !strings.HasPrefix(id, "i-") || len(id) != 10 && len(id) != 19 {
		return false
	}
	for _, c := range id[2:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func checkInstanceIDs(ids []string) error {
	for _, id := range ids {
		if !validInstanceID(id) {
			return clientError("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
	}
	return nil
}

func (s *Service) getInstance(tx store.Tx, r *awsproto.Request, id string) (instance, error) {
	return s.getInstanceOf(tx, r.Caller.AccountID, id)
}

func (s *Service) getInstanceOf(tx store.Tx, account, id string) (instance, error) {
	var in instance
	if !validInstanceID(id) {
		return in, clientError("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	kv, err := tx.Get(s.instanceKey(account, id))
	if errors.Is(err, store.ErrNotFound) {
		return in, instanceNotFound(id)
	}
	if err != nil {
		return in, err
	}
	if err := json.Unmarshal(kv.Value, &in); err != nil {
		return in, fmt.Errorf("instance %s: %w", id, err)
	}
	return in, nil
}

// readInstance reads the instance a read-only action names (InstanceId), as EC2 checks it: the
// parameter is required, the instance must exist, and a DryRun stops there.
func (s *Service) readInstance(ctx context.Context, r *awsproto.Request, id string, dryRun bool) (instance, error) {
	var inst instance
	if id == "" {
		return inst, missingParameter("InstanceId")
	}
	err := s.store.View(ctx, func(tx store.Tx) (err error) {
		inst, err = s.getInstance(tx, r, id)
		return err
	})
	if err == nil && dryRun {
		err = errDryRun
	}
	return inst, err
}

func (s *Service) putInstance(tx store.Tx, in instance) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return tx.Put(s.instanceKey(in.Account, in.ID), b)
}

// listInstances returns every instance of an account in this region.
func (s *Service) listInstances(ctx context.Context, account string) ([]instance, error) {
	var out []instance
	err := s.store.View(ctx, func(tx store.Tx) (err error) {
		out, err = s.listInstancesTx(tx, account)
		return err
	})
	return out, err
}

func (s *Service) listInstancesTx(tx store.Tx, account string) ([]instance, error) {
	kvs, err := tx.List("ec2/"+account+"/"+s.region+"/instance/", "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]instance, 0, len(kvs))
	for _, kv := range kvs {
		var in instance
		if err := json.Unmarshal(kv.Value, &in); err != nil {
			return nil, fmt.Errorf("instance %s: %w", kv.Key, err)
		}
		out = append(out, in)
	}
	return out, nil
}

// allInstances returns the instances of every account in this region (for reconciling at start).
func (s *Service) allInstances(ctx context.Context) ([]instance, error) {
	kvs, err := s.store.List(ctx, "ec2/", "", 0)
	if err != nil {
		return nil, err
	}
	var out []instance
	for _, kv := range kvs {
		parts := strings.Split(kv.Key, "/")
		if len(parts) != 5 || parts[2] != s.region || parts[3] != "instance" {
			continue
		}
		var in instance
		if err := json.Unmarshal(kv.Value, &in); err != nil {
			return nil, fmt.Errorf("instance %s: %w", kv.Key, err)
		}
		out = append(out, in)
	}
	return out, nil
}

// tagsByPrefix returns the tags of every resource whose id starts with idPrefix ("i-"), by id.
func (s *Service) tagsByPrefix(ctx context.Context, r *awsproto.Request, idPrefix string) (map[string]tagList, error) {
	kvs, err := s.store.List(ctx, s.prefix(r)+"tags/"+idPrefix, "", 0)
	if err != nil {
		return nil, err
	}
	out := make(map[string]tagList, len(kvs))
	for _, kv := range kvs {
		l, err := loadTags(kv, nil)
		if err != nil {
			return nil, err
		}
		out[kv.Key[len(s.prefix(r)+"tags/"):]] = l
	}
	return out, nil
}

// userTransition is the StateTransitionReason of a change the user asked for, as EC2 words it.
func userTransition(t time.Time) string {
	return "User initiated (" + t.UTC().Format("2006-01-02 15:04:05 MST") + ")"
}
