package ec2

import (
	"context"
	"encoding/json"
	"fmt"
	"path"

	"github.com/nubis/nubis/internal/machine"
	"github.com/nubis/nubis/internal/store"
)

// rootVolumeOf is the volume an instance's root disk is kept on: its root volume if it has a
// record (instances launched before root volumes existed have none, and keep a plain disk).
func (f *fleet) rootVolumeOf(ctx context.Context, inst instance) string {
	if f.volumes == nil || inst.RootVolumeID == "" {
		return ""
	}
	var found bool
	f.s.store.View(ctx, func(tx store.Tx) error {
		_, err := f.s.getVolume(tx, inst.Account, inst.RootVolumeID)
		found = err == nil
		return nil
	})
	if !found {
		return ""
	}
	return inst.RootVolumeID
}

// isRoot tells whether an attachment is an instance's root device, which its machine mounts.
func isRoot(a *ebsAttachment) bool { return a != nil && a.Device == "/dev/xvda" }

// attachedVolumes are the volumes attached to an instance.
func (s *Service) attachedVolumes(ctx context.Context, account, instanceID string) ([]ebsVolume, error) {
	kvs, err := s.store.List(ctx, "ec2/"+account+"/"+s.region+"/volume/", "", 0)
	if err != nil {
		return nil, err
	}
	var out []ebsVolume
	for _, kv := range kvs {
		var v ebsVolume
		if json.Unmarshal(kv.Value, &v) == nil && v.Attachment != nil && v.Attachment.InstanceID == instanceID {
			out = append(out, v)
		}
	}
	return out, nil
}

// mountVolume makes an attached volume appear in its instance, if the instance runs (a stopped
// one gets it when it boots).
func (f *fleet) mountVolume(ctx context.Context, inst instance, vol ebsVolume) error {
	t := f.get(inst.ID)
	if t == nil {
		return nil
	}
	t.mu.Lock()
	m := t.m
	t.mu.Unlock()
	if m == nil {
		return nil
	}
	return f.mountOn(ctx, m, vol)
}

func (f *fleet) mountOn(ctx context.Context, m machine.Machine, vol ebsVolume) error {
	dir, err := m.VolumeDir(path.Base(vol.Attachment.Device))
	if err != nil {
		return err
	}
	if vol.GrowPending {
		if _, mounted := f.volumes.MountPoint(vol.ID); !mounted {
			if err := f.volumes.Grow(ctx, vol.ID, vol.SizeGiB); err != nil {
				f.log.Error("grow volume before mounting", "volume", vol.ID, "err", err)
			} else {
				f.s.store.Update(ctx, func(tx store.Tx) error {
					cur, err := f.s.getVolume(tx, vol.Account, vol.ID)
					if err != nil {
						return err
					}
					cur.GrowPending = false
					return f.s.putVolume(tx, cur)
				})
			}
		}
	}
	if err := f.volumes.Mount(ctx, vol.ID, dir); err != nil {
		return fmt.Errorf("attach %s: %w", vol.ID, err)
	}
	return nil
}

// mountVolumes mounts the volumes attached to an instance that has just booted.
func (f *fleet) mountVolumes(inst instance, m machine.Machine) {
	if f.volumes == nil {
		return
	}
	ctx := context.WithoutCancel(f.ctx)
	vols, err := f.s.attachedVolumes(ctx, inst.Account, inst.ID)
	if err != nil {
		f.log.Error("volumes of instance", "id", inst.ID, "err", err)
		return
	}
	for _, v := range vols {
		if isRoot(v.Attachment) {
			continue
		}
		if err := f.mountOn(ctx, m, v); err != nil {
			f.log.Error("mount volume", "id", inst.ID, "volume", v.ID, "err", err)
		}
	}
}

// unmountVolumes unmounts the volumes of an instance whose machine has stopped; they stay
// attached.
func (f *fleet) unmountVolumes(account, instanceID string) {
	if f.volumes == nil {
		return
	}
	ctx := context.WithoutCancel(f.ctx)
	vols, err := f.s.attachedVolumes(ctx, account, instanceID)
	if err != nil {
		return
	}
	for _, v := range vols {
		if isRoot(v.Attachment) {
			continue // the machine's own cleanup unmounts it
		}
		if err := f.volumes.Unmount(ctx, v.ID, true); err != nil {
			f.log.Error("unmount volume", "id", instanceID, "volume", v.ID, "err", err)
		}
	}
}

// releaseVolumes detaches the volumes of a terminated instance (deleting those marked
// DeleteOnTermination).
func (f *fleet) releaseVolumes(account, instanceID string) {
	if f.volumes == nil {
		return
	}
	f.unmountVolumes(account, instanceID)
	ctx := context.WithoutCancel(f.ctx)
	vols, err := f.s.attachedVolumes(ctx, account, instanceID)
	if err != nil {
		return
	}
	for _, v := range vols {
		del := v.Attachment.DeleteOnTermination
		err := f.s.store.Update(ctx, func(tx store.Tx) error {
			if del {
				return tx.Delete(f.s.volumeKey(account, v.ID))
			}
			v.Attachment = nil
			return f.s.putVolume(tx, v)
		})
		if err == nil && del {
			err = f.volumes.Delete(ctx, v.ID)
		}
		if err != nil {
			f.log.Error("release volume", "id", instanceID, "volume", v.ID, "err", err)
		}
	}
}
