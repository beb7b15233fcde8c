package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// EBS volumes, stored under ec2/<account>/<region>/volume/<id>, their data in the fleet's
// volume.Store: an ext4 file system of exactly the volume's size. An attached volume appears in
// its instance as that file system, mounted at /mnt/<device> (sdf for /dev/sdf): a container
// cannot mount a block device itself.

type ebsVolume struct {
	ID         string         `json:"id"`
	Account    string         `json:"account"`
	SizeGiB    int            `json:"size"`
	Type       string         `json:"type"`
	Iops       int            `json:"iops,omitempty"`
	Throughput int            `json:"throughput,omitempty"`
	Zone       string         `json:"zone"`
	SnapshotID string         `json:"snapshotId,omitempty"`
	Created    time.Time      `json:"created"`
	Attachment *ebsAttachment `json:"attachment,omitempty"`
	// GrowPending is set when the volume's file system could not grow while mounted (online
	// resize takes CAP_SYS_RESOURCE, which some hosts' root lacks): it grows offline before the
	// volume is next mounted.
	GrowPending bool             `json:"growPending,omitempty"`
	Modified    *ebsModification `json:"modified,omitempty"`
}

type ebsAttachment struct {
	InstanceID          string    `json:"instanceId"`
	Device              string    `json:"device"`
	AttachTime          time.Time `json:"attachTime"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
}

type ebsModification struct {
	OriginalSize int       `json:"originalSize"`
	OriginalType string    `json:"originalType"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
}

type ebsSnapshot struct {
	ID          string    `json:"id"`
	Account     string    `json:"account"`
	VolumeID    string    `json:"volumeId"`
	SizeGiB     int       `json:"size"`
	Description string    `json:"description,omitempty"`
	State       string    `json:"state"` // pending, completed, error
	Started     time.Time `json:"started"`
}

func (s *Service) volumeKey(account, id string) string {
	return "ec2/" + account + "/" + s.region + "/volume/" + id
}

func (s *Service) snapshotKey(account, id string) string {
	return "ec2/" + account + "/" + s.region + "/snapshot/" + id
}

func (s *Service) getVolume(tx store.Tx, account, id string) (ebsVolume, error) {
	var v ebsVolume
	if !strings.HasPrefix(id, "vol-") {
		return v, clientError("InvalidVolumeID.Malformed", "Invalid id: \"%s\" (expecting \"vol-...\")", id)
	}
	kv, err := tx.Get(s.volumeKey(account, id))
	if errors.Is(err, store.ErrNotFound) {
		return v, clientError("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	}
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(kv.Value, &v)
}

func (s *Service) putVolume(tx store.Tx, v ebsVolume) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(s.volumeKey(v.Account, v.ID), b)
}

func (s *Service) getSnapshot(tx store.Tx, account, id string) (ebsSnapshot, error) {
	var sn ebsSnapshot
	if !strings.HasPrefix(id, "snap-") {
		return sn, clientError("InvalidSnapshotID.Malformed", "Invalid id: \"%s\" (expecting \"snap-...\")", id)
	}
	kv, err := tx.Get(s.snapshotKey(account, id))
	if errors.Is(err, store.ErrNotFound) {
		return sn, clientError("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	if err != nil {
		return sn, err
	}
	return sn, json.Unmarshal(kv.Value, &sn)
}

// volumeSizes are EC2's size limits per volume type, in GiB.
var volumeSizes = map[string][2]int{"gp2": {1, 16384}, "gp3": {1, 16384}, "io1": {4, 16384}, "io2": {4, 16384},
	"st1": {125, 16384}, "sc1": {125, 16384}, "standard": {1, 1024}}

func checkVolumeSize(typ string, size int) error {
	lim, ok := volumeSizes[typ]
	if !ok {
		return invalidValue("VolumeType", typ, "Valid values are gp2, gp3, io1, io2, st1, sc1 and standard.")
	}
	if size < lim[0] || size > lim[1] {
		return clientError("InvalidParameterValue", "Volume of %dGiB is out of the %s range of %d-%dGiB.", size, typ, lim[0], lim[1])
	}
	return nil
}

type volumeXML struct {
	VolumeID    string                       `xml:"volumeId"`
	Size        int                          `xml:"size"`
	SnapshotID  string                       `xml:"snapshotId"`
	Zone        string                       `xml:"availabilityZone"`
	Status      string                       `xml:"status"`
	CreateTime  string                       `xml:"createTime"`
	Attachments awsproto.List[attachmentXML] `xml:"attachmentSet"`
	VolumeType  string                       `xml:"volumeType"`
	Iops        int                          `xml:"iops,omitempty"`
	Throughput  int                          `xml:"throughput,omitempty"`
	Encrypted   bool                         `xml:"encrypted"`
	MultiAttach bool                         `xml:"multiAttachEnabled"`
	Tags        awsproto.List[Tag]           `xml:"tagSet,omitempty"`
}

type attachmentXML struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

func volumeToXML(v ebsVolume, status string, tags tagList) volumeXML {
	x := volumeXML{VolumeID: v.ID, Size: v.SizeGiB, SnapshotID: v.SnapshotID, Zone: v.Zone, Status: status,
		CreateTime: timestamp(v.Created), Attachments: awsproto.List[attachmentXML]{}, VolumeType: v.Type,
		Iops: v.Iops, Throughput: v.Throughput, Tags: tags.xml()}
	if status == "" {
		x.Status = "available"
		if v.Attachment != nil {
			x.Status = "in-use"
		}
	}
	if a := v.Attachment; a != nil {
		x.Attachments = append(x.Attachments, attachmentXML{VolumeID: v.ID, InstanceID: a.InstanceID, Device: a.Device,
			Status: "attached", AttachTime: timestamp(a.AttachTime), DeleteOnTermination: a.DeleteOnTermination})
	}
	return x
}

func (s *Service) needVolumes() error {
	if s.fleet == nil || s.fleet.volumes == nil {
		return clientError("Unsupported", "Volumes cannot be made on this host: %s", s.noFleet)
	}
	return nil
}

type createVolumeInput struct {
	AvailabilityZone   string             `query:"AvailabilityZone"`
	Size               int                `query:"Size"`
	SnapshotID         string             `query:"SnapshotId"`
	VolumeType         string             `query:"VolumeType"`
	Iops               int                `query:"Iops"`
	Throughput         int                `query:"Throughput"`
	Encrypted          bool               `query:"Encrypted"`
	KmsKeyID           string             `query:"KmsKeyId"`
	MultiAttachEnabled bool               `query:"MultiAttachEnabled"`
	ClientToken        string             `query:"ClientToken"`
	TagSpecifications  []TagSpecification `query:"TagSpecification"`
	DryRun             bool               `query:"DryRun"`
}

func (s *Service) createVolume(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in createVolumeInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.AvailabilityZone == "" {
		return nil, missingParameter("AvailabilityZone")
	}
	if !slices.ContainsFunc(s.zones(), func(z availabilityZone) bool { return z.ZoneName == in.AvailabilityZone }) {
		return nil, clientError("InvalidZone.NotFound", "The zone '%s' does not exist.", in.AvailabilityZone)
	}
	if in.VolumeType == "" {
		in.VolumeType = "gp2"
	}
	if in.MultiAttachEnabled {
		return nil, clientError("InvalidParameterCombination", "nubis volumes attach to one instance at a time")
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "volume")
	if err != nil {
		return nil, err
	}
	account := r.Caller.AccountID
	var snap ebsSnapshot
	if in.SnapshotID != "" {
		if err := s.store.View(ctx, func(tx store.Tx) (err error) {
			snap, err = s.getSnapshot(tx, account, in.SnapshotID)
			return err
		}); err != nil {
			return nil, err
		}
		if snap.State != "completed" {
			return nil, clientError("IncorrectState", "Snapshot '%s' is not completed (it is %s).", snap.ID, snap.State)
		}
		if in.Size == 0 {
			in.Size = snap.SizeGiB
		}
		if in.Size < snap.SizeGiB {
			return nil, clientError("InvalidParameterValue", "Volume of %dGiB is smaller than snapshot '%s', expect size >= %dGiB", in.Size, snap.ID, snap.SizeGiB)
		}
	}
	if in.Size == 0 {
		return nil, clientError("MissingParameter", "The request must contain the parameter size or snapshotId")
	}
	if err := checkVolumeSize(in.VolumeType, in.Size); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	if err := s.needVolumes(); err != nil {
		return nil, err
	}
	v := ebsVolume{ID: newID("vol"), Account: account, SizeGiB: in.Size, Type: in.VolumeType, Iops: in.Iops,
		Throughput: in.Throughput, Zone: in.AvailabilityZone, SnapshotID: in.SnapshotID, Created: s.now().UTC()}
	if in.SnapshotID != "" {
		err = s.fleet.volumes.CreateFromSnapshot(ctx, v.ID, snap.ID, v.SizeGiB)
	} else {
		err = s.fleet.volumes.Create(ctx, v.ID, v.SizeGiB)
	}
	if err != nil {
		return nil, fmt.Errorf("create volume: %w", err)
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if err := s.putVolume(tx, v); err != nil {
			return err
		}
		return putTags(tx, s.tagKey(r, v.ID), tagList(nil).set(tags))
	})
	if err != nil {
		s.fleet.volumes.Delete(context.WithoutCancel(ctx), v.ID)
		return nil, err
	}
	return volumeToXML(v, "creating", tagList(nil).set(tags)), nil
}

type describeVolumesInput struct {
	VolumeIDs  []string `query:"VolumeId"`
	Filters    []Filter `query:"Filter"`
	MaxResults int      `query:"MaxResults"`
	NextToken  string   `query:"NextToken"`
	DryRun     bool     `query:"DryRun"`
}

type describeVolumesOutput struct {
	Volumes   awsproto.List[volumeXML] `xml:"volumeSet"`
	NextToken string                   `xml:"nextToken,omitempty"`
}

var volumeFilters = map[string]bool{"status": true, "attachment.instance-id": true, "attachment.device": true,
	"attachment.status": true, "availability-zone": true, "size": true, "volume-type": true, "volume-id": true,
	"snapshot-id": true, "tag-key": true, "attachment.delete-on-termination": true}

func (s *Service) describeVolumes(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeVolumesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, func(n string) bool { return volumeFilters[n] || strings.HasPrefix(n, "tag:") }); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	kvs, err := s.store.List(ctx, "ec2/"+r.Caller.AccountID+"/"+s.region+"/volume/", "", 0)
	if err != nil {
		return nil, err
	}
	tags, err := s.tagsByPrefix(ctx, r, "vol-")
	if err != nil {
		return nil, err
	}
	req := request(in.VolumeIDs)
	all := awsproto.List[volumeXML]{}
	for _, kv := range kvs {
		var v ebsVolume
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("volume %s: %w", kv.Key, err)
		}
		if !req.shows(v.ID) {
			continue
		}
		x := volumeToXML(v, "", tags[v.ID])
		ok := matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "status":
				return []string{x.Status}
			case "availability-zone":
				return []string{v.Zone}
			case "size":
				return []string{strconv.Itoa(v.SizeGiB)}
			case "volume-type":
				return []string{v.Type}
			case "volume-id":
				return []string{v.ID}
			case "snapshot-id":
				return []string{v.SnapshotID}
			}
			if a := v.Attachment; a != nil {
				switch name {
				case "attachment.instance-id":
					return []string{a.InstanceID}
				case "attachment.device":
					return []string{a.Device}
				case "attachment.status":
					return []string{"attached"}
				case "attachment.delete-on-termination":
					return []string{boolString(a.DeleteOnTermination)}
				}
			}
			return tags[v.ID].filterValues(name)
		})
		if ok {
			all = append(all, x)
		}
	}
	if err := req.notFound(func(id string) error {
		return clientError("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	}); err != nil {
		return nil, err
	}
	return describeVolumesOutput{Volumes: all}, nil
}

type volumeIDInput struct {
	VolumeID   string `query:"VolumeId"`
	InstanceID string `query:"InstanceId"`
	Device     string `query:"Device"`
	Force      bool   `query:"Force"`
	DryRun     bool   `query:"DryRun"`
}

// deviceRE is what nubis attaches volumes as: /dev/sd[b-z] or /dev/xvd[b-z] (the root is /dev/xvda).
var deviceRE = regexp.MustCompile(`^/dev/(sd|xvd)[b-z]$`)

func (s *Service) attachVolume(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in volumeIDInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	for name, v := range map[string]string{"VolumeId": in.VolumeID, "InstanceId": in.InstanceID, "Device": in.Device} {
		if v == "" {
			return nil, missingParameter(name)
		}
	}
	if !deviceRE.MatchString(in.Device) {
		return nil, invalidValue("device", in.Device, "Use /dev/sdf to /dev/sdp (or /dev/xvdf...).")
	}
	if err := s.needVolumes(); err != nil && !in.DryRun {
		return nil, err
	}
	account := r.Caller.AccountID
	var vol ebsVolume
	var inst instance
	err := s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if vol, err = s.getVolume(tx, account, in.VolumeID); err != nil {
			return err
		}
		if inst, err = s.getInstance(tx, r, in.InstanceID); err != nil {
			return err
		}
		if vol.Attachment != nil {
			return clientError("VolumeInUse", "%s is already attached to an instance", vol.ID)
		}
		if vol.Zone != inst.Zone {
			return clientError("InvalidVolume.ZoneMismatch", "The volume '%s' is not in the same availability zone as instance '%s'", vol.ID, inst.ID)
		}
		if inst.State != stateRunning && inst.State != stateStopped {
			return clientError("IncorrectState", "Instance '%s' is not 'running' or 'stopped'.", inst.ID)
		}
		kvs, err := tx.List("ec2/"+account+"/"+s.region+"/volume/", "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var other ebsVolume
			if json.Unmarshal(kv.Value, &other) == nil && other.Attachment != nil && other.Attachment.InstanceID == inst.ID &&
				strings.TrimPrefix(strings.TrimPrefix(other.Attachment.Device, "/dev/"), "xv") == strings.TrimPrefix(strings.TrimPrefix(in.Device, "/dev/"), "xv") {
				return clientError("InvalidParameterValue", "Invalid value '%s' for unixDevice. Attachment point %s is already in use", in.Device, in.Device)
			}
		}
		if in.DryRun {
			return errDryRun
		}
		vol.Attachment = &ebsAttachment{InstanceID: inst.ID, Device: in.Device, AttachTime: s.now().UTC()}
		return s.putVolume(tx, vol)
	})
	if err != nil {
		return nil, err
	}
	if err := s.fleet.mountVolume(ctx, inst, vol); err != nil {
		// Undo the record: the volume could not appear in the instance.
		s.store.Update(context.WithoutCancel(ctx), func(tx store.Tx) error {
			vol.Attachment = nil
			return s.putVolume(tx, vol)
		})
		return nil, err
	}
	return attachmentXML{VolumeID: vol.ID, InstanceID: inst.ID, Device: in.Device, Status: "attaching",
		AttachTime: timestamp(vol.Attachment.AttachTime)}, nil
}

func (s *Service) detachVolume(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in volumeIDInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.VolumeID == "" {
		return nil, missingParameter("VolumeId")
	}
	if err := s.needVolumes(); err != nil && !in.DryRun {
		return nil, err
	}
	account := r.Caller.AccountID
	var vol ebsVolume
	err := s.store.View(ctx, func(tx store.Tx) (err error) {
		if vol, err = s.getVolume(tx, account, in.VolumeID); err != nil {
			return err
		}
		if vol.Attachment == nil {
			return clientError("IncorrectState", "Volume '%s' is in the 'available' state.", vol.ID)
		}
		if isRoot(vol.Attachment) {
			return clientError("OperationNotPermitted", "Volume '%s' is the root volume of instance '%s': nubis does not detach root volumes.", vol.ID, vol.Attachment.InstanceID)
		}
		if in.InstanceID != "" && in.InstanceID != vol.Attachment.InstanceID || in.Device != "" && in.Device != vol.Attachment.Device {
			return clientError("InvalidAttachment.NotFound", "Volume '%s' is not attached to instance '%s' as %s", vol.ID, in.InstanceID, in.Device)
		}
		if in.DryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.fleet.volumes.Unmount(ctx, vol.ID, in.Force); err != nil {
		return nil, clientError("VolumeInUse", "Volume %s is busy in instance %s (files are open); detach with --force", vol.ID, vol.Attachment.InstanceID)
	}
	a := *vol.Attachment
	err = s.store.Update(ctx, func(tx store.Tx) error {
		cur, err := s.getVolume(tx, account, vol.ID)
		if err != nil {
			return err
		}
		cur.Attachment = nil
		return s.putVolume(tx, cur)
	})
	if err != nil {
		return nil, err
	}
	return attachmentXML{VolumeID: vol.ID, InstanceID: a.InstanceID, Device: a.Device, Status: "detaching",
		AttachTime: timestamp(a.AttachTime), DeleteOnTermination: a.DeleteOnTermination}, nil
}

func (s *Service) deleteVolume(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in volumeIDInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.VolumeID == "" {
		return nil, missingParameter("VolumeId")
	}
	account := r.Caller.AccountID
	err := s.store.Update(ctx, func(tx store.Tx) error {
		vol, err := s.getVolume(tx, account, in.VolumeID)
		if err != nil {
			return err
		}
		if vol.Attachment != nil {
			return clientError("VolumeInUse", "Volume %s is currently attached to %s", vol.ID, vol.Attachment.InstanceID)
		}
		if in.DryRun {
			return errDryRun
		}
		if err := s.needVolumes(); err != nil {
			return err
		}
		if err := tx.Delete(s.volumeKey(account, vol.ID)); err != nil {
			return err
		}
		return putTags(tx, s.tagKey(r, vol.ID), nil)
	})
	if err != nil {
		return nil, err
	}
	// The data goes once the record has: a crash in between leaves a file no volume names, which
	// is only disk space (never a volume without its data).
	if err := s.fleet.volumes.Delete(ctx, in.VolumeID); err != nil {
		s.log.Error("delete volume data", "volume", in.VolumeID, "err", err)
	}
	return returnOutput{Return: true}, nil
}
