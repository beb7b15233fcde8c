package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

type modifyVolumeInput struct {
	VolumeID           string `query:"VolumeId"`
	Size               int    `query:"Size"`
	VolumeType         string `query:"VolumeType"`
	Iops               int    `query:"Iops"`
	Throughput         int    `query:"Throughput"`
	MultiAttachEnabled bool   `query:"MultiAttachEnabled"`
	DryRun             bool   `query:"DryRun"`
}

type volumeModificationXML struct {
	VolumeID           string `xml:"volumeId"`
	ModificationState  string `xml:"modificationState"`
	TargetSize         int    `xml:"targetSize"`
	TargetVolumeType   string `xml:"targetVolumeType"`
	OriginalSize       int    `xml:"originalSize"`
	OriginalVolumeType string `xml:"originalVolumeType"`
	Progress           int    `xml:"progress"`
	StartTime          string `xml:"startTime"`
	EndTime            string `xml:"endTime,omitempty"`
}

type modifyVolumeOutput struct {
	Modification volumeModificationXML `xml:"volumeModification"`
}

// modifyVolume grows a volume (and its file system, online when attached) or changes its type.
func (s *Service) modifyVolume(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in modifyVolumeInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.VolumeID == "" {
		return nil, missingParameter("VolumeId")
	}
	account := r.Caller.AccountID
	var out modifyVolumeOutput
	err := s.store.Update(ctx, func(tx store.Tx) error {
		vol, err := s.getVolume(tx, account, in.VolumeID)
		if err != nil {
			return err
		}
		size, typ := vol.SizeGiB, vol.Type
		if in.Size != 0 {
			if in.Size < vol.SizeGiB {
				return clientError("InvalidParameterValue", "New size cannot be smaller than existing size")
			}
			size = in.Size
		}
		if in.VolumeType != "" {
			typ = in.VolumeType
		}
		if err := checkVolumeSize(typ, size); err != nil {
			return err
		}
		if in.DryRun {
			return errDryRun
		}
		if err := s.needVolumes(); err != nil {
			return err
		}
		state := "completed"
		if size > vol.SizeGiB {
			if err := s.fleet.volumes.Grow(ctx, vol.ID, size); err != nil {
				if vol.Attachment == nil {
					return fmt.Errorf("grow volume %s: %w", vol.ID, err)
				}
				// Mounted and not growable online here: it grows before its next mount.
				s.log.Warn("volume grows when next attached", "volume", vol.ID, "err", err)
				vol.GrowPending, state = true, "optimizing"
			}
		}
		now := s.now().UTC()
		out.Modification = volumeModificationXML{VolumeID: vol.ID, ModificationState: state, TargetSize: size,
			TargetVolumeType: typ, OriginalSize: vol.SizeGiB, OriginalVolumeType: vol.Type, Progress: 100,
			StartTime: timestamp(now), EndTime: timestamp(now)}
		vol.Modified = &ebsModification{OriginalSize: vol.SizeGiB, OriginalType: vol.Type, Start: now, End: now}
		vol.SizeGiB, vol.Type = size, typ
		return s.putVolume(tx, vol)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type createSnapshotInput struct {
	VolumeID          string             `query:"VolumeId"`
	Description       string             `query:"Description"`
	OutpostArn        string             `query:"OutpostArn"`
	TagSpecifications []TagSpecification `query:"TagSpecification"`
	DryRun            bool               `query:"DryRun"`
}

type snapshotXML struct {
	SnapshotID  string             `xml:"snapshotId"`
	VolumeID    string             `xml:"volumeId"`
	Status      string             `xml:"status"`
	StartTime   string             `xml:"startTime"`
	Progress    string             `xml:"progress"`
	OwnerID     string             `xml:"ownerId"`
	VolumeSize  int                `xml:"volumeSize"`
	Description string             `xml:"description"`
	Encrypted   bool               `xml:"encrypted"`
	StorageTier string             `xml:"storageTier"`
	Tags        awsproto.List[Tag] `xml:"tagSet,omitempty"`
}

func snapshotToXML(sn ebsSnapshot, tags tagList) snapshotXML {
	progress := "100%"
	if sn.State != "completed" {
		progress = "0%"
	}
	return snapshotXML{SnapshotID: sn.ID, VolumeID: sn.VolumeID, Status: sn.State, StartTime: timestamp(sn.Started),
		Progress: progress, OwnerID: sn.Account, VolumeSize: sn.SizeGiB, Description: sn.Description,
		StorageTier: "standard", Tags: tags.xml()}
}

// createSnapshot copies a volume as it is now (its file system frozen for the copy when it is
// attached); the snapshot is pending until the copy is complete.
func (s *Service) createSnapshot(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in createSnapshotInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.VolumeID == "" {
		return nil, missingParameter("VolumeId")
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "snapshot")
	if err != nil {
		return nil, err
	}
	account := r.Caller.AccountID
	var sn ebsSnapshot
	err = s.store.Update(ctx, func(tx store.Tx) error {
		vol, err := s.getVolume(tx, account, in.VolumeID)
		if err != nil {
			return err
		}
		if in.DryRun {
			return errDryRun
		}
		if err := s.needVolumes(); err != nil {
			return err
		}
		sn = ebsSnapshot{ID: newID("snap"), Account: account, VolumeID: vol.ID, SizeGiB: vol.SizeGiB,
			Description: in.Description, State: "pending", Started: s.now().UTC()}
		b, _ := json.Marshal(sn)
		if err := tx.Put(s.snapshotKey(account, sn.ID), b); err != nil {
			return err
		}
		return putTags(tx, s.tagKey(r, sn.ID), tagList(nil).set(tags))
	})
	if err != nil {
		return nil, err
	}
	f := s.fleet
	f.goDo(func() {
		ctx := context.WithoutCancel(f.ctx)
		state := "completed"
		if err := f.volumes.Snapshot(ctx, sn.VolumeID, sn.ID); err != nil {
			f.log.Error("snapshot", "snapshot", sn.ID, "volume", sn.VolumeID, "err", err)
			state = "error"
		}
		f.s.store.Update(ctx, func(tx store.Tx) error {
			cur, err := f.s.getSnapshot(tx, account, sn.ID)
			if err != nil {
				return err
			}
			cur.State = state
			b, _ := json.Marshal(cur)
			return tx.Put(f.s.snapshotKey(account, sn.ID), b)
		})
	})
	return snapshotToXML(sn, tagList(nil).set(tags)), nil
}

type describeSnapshotsInput struct {
	SnapshotIDs  []string `query:"SnapshotId"`
	OwnerIDs     []string `query:"Owner"`
	RestorableBy []string `query:"RestorableBy"`
	Filters      []Filter `query:"Filter"`
	MaxResults   int      `query:"MaxResults"`
	NextToken    string   `query:"NextToken"`
	DryRun       bool     `query:"DryRun"`
}

type describeSnapshotsOutput struct {
	Snapshots awsproto.List[snapshotXML] `xml:"snapshotSet"`
}

func (s *Service) describeSnapshots(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeSnapshotsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := simpleFilters(in.Filters, "snapshot-id", "volume-id", "status", "owner-id", "description", "volume-size"); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	account := r.Caller.AccountID
	kvs, err := s.store.List(ctx, "ec2/"+account+"/"+s.region+"/snapshot/", "", 0)
	if err != nil {
		return nil, err
	}
	tags, err := s.tagsByPrefix(ctx, r, "snap-")
	if err != nil {
		return nil, err
	}
	req := request(in.SnapshotIDs)
	out := describeSnapshotsOutput{Snapshots: awsproto.List[snapshotXML]{}}
	for _, kv := range kvs {
		var sn ebsSnapshot
		if err := json.Unmarshal(kv.Value, &sn); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", kv.Key, err)
		}
		if !req.shows(sn.ID) {
			continue
		}
		if len(in.OwnerIDs) > 0 && !setOf(in.OwnerIDs)["self"] && !setOf(in.OwnerIDs)[account] {
			continue
		}
		tl := tags[sn.ID]
		ok := matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "snapshot-id":
				return []string{sn.ID}
			case "volume-id":
				return []string{sn.VolumeID}
			case "status":
				return []string{sn.State}
			case "owner-id":
				return []string{account}
			case "description":
				return []string{sn.Description}
			case "volume-size":
				return []string{itoa(sn.SizeGiB)}
			}
			return tl.filterValues(name)
		})
		if ok {
			out.Snapshots = append(out.Snapshots, snapshotToXML(sn, tl))
		}
	}
	if err := req.notFound(func(id string) error {
		return clientError("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}); err != nil {
		return nil, err
	}
	return out, nil
}

type deleteSnapshotInput struct {
	SnapshotID string `query:"SnapshotId"`
	DryRun     bool   `query:"DryRun"`
}

func (s *Service) deleteSnapshot(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in deleteSnapshotInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.SnapshotID == "" {
		return nil, missingParameter("SnapshotId")
	}
	account := r.Caller.AccountID
	err := s.store.Update(ctx, func(tx store.Tx) error {
		sn, err := s.getSnapshot(tx, account, in.SnapshotID)
		if err != nil {
			return err
		}
		if sn.State == "pending" {
			return clientError("IncorrectState", "The snapshot '%s' is still being made.", sn.ID)
		}
		if in.DryRun {
			return errDryRun
		}
		if err := s.needVolumes(); err != nil {
			return err
		}
		if err := tx.Delete(s.snapshotKey(account, sn.ID)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return putTags(tx, s.tagKey(r, sn.ID), nil)
	})
	if err != nil {
		return nil, err
	}
	if err := s.fleet.volumes.DeleteSnapshot(ctx, in.SnapshotID); err != nil {
		s.log.Error("delete snapshot data", "snapshot", in.SnapshotID, "err", err)
	}
	return returnOutput{Return: true}, nil
}
