// vcsim-ext, vApps and guest identity (upsagent issue 12: which host runs the vCenter VM
// and the agent's VM; vApps stopped as units).
//
// The stock 0.24.2 simulator has CreateVApp but no PowerOnVApp_Task / PowerOffVApp_Task,
// sets no VirtualMachine.parentVApp and no vAppConfig.entityConfig.  Added here, after
// vSphere's API reference (VirtualApp.PowerOffVApp_Task, VAppEntityConfigInfo):
//
//   - PowerOffVApp_Task(force): force: every member powered off at once.  Otherwise the
//     vApp's stop order: the members grouped by entityConfig startOrder, the highest first
//     ("reverse on shutdown"); each member of a group gets its stopAction (powerOff, the
//     default; guestShutdown, as ShutdownGuest here: off after -guest-delay unless it hangs,
//     and powered off when its tools do not run (the reference does not say; a choice of
//     this simulator); suspend; none: left on), then the sequence waits the group's largest
//     stopDelay ("the system waits until the number of seconds specified in the delay have
//     passed"), cut short here once those members are off, before the next group.  The task succeeds at the end even when a hung guest is
//     still on (the caller powers it off); cancelable between groups.  InvalidState when no
//     member is on.
//   - PowerOnVApp_Task: members with startAction powerOn, lowest startOrder first, each
//     group waiting its startDelay; InvalidState when a member's host is down or in
//     maintenance.
//
// Control:
//
//	POST /_ext/vapp?name=A&vms=V1,V2&order=1,2&stop=guestShutdown,powerOff&delay=5,0&start=powerOn,none
//	     creates vApp A in the cluster's root pool with those members (parentVApp,
//	     resourcePool, entityConfig set; order/stop/delay/start per member, defaults 0 /
//	     powerOff / 0 / powerOn)
//	POST /_ext/guest?name=V&ip=A,B&mac=M&uuid=U  the VM's guest.ipAddress (A), guest.net[0]
//	     addresses (all); its first virtual NIC's macAddress (and guest.net[0]'s);
//	     config.uuid (the SMBIOS UUID a VM shows its guest)
//
// /_ext/state lists "vapps": name, state (started/stopped), members.
package main

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// extraControls: more /_ext/ paths, run under mu; a non-empty answer is an error (400).
var extraControls = map[string]func(url.Values) string{
	"/_ext/vapp":  createVAppControl,
	"/_ext/guest": guestControl,
}

func init() {
	overridden["PowerOffVApp_Task"] = "VirtualApp"
	overridden["PowerOnVApp_Task"] = "VirtualApp"
}

// ExtVirtualApp shadows a VirtualApp.
type ExtVirtualApp struct {
	*simulator.VirtualApp
	ref types.ManagedObjectReference
}

func (a *ExtVirtualApp) Reference() types.ManagedObjectReference { return a.ref }

type vappState struct {
	Name  string   `json:"name"`
	State string   `json:"state"`
	VMs   []string `json:"vms"`
}

// vappStates is the "vapps" of /_ext/state (under mu).
func vappStates() []vappState {
	out := []vappState{}
	for _, e := range simulator.Map.All("VirtualApp") {
		a := e.(*simulator.VirtualApp)
		s := vappState{Name: a.Name, State: "stopped", VMs: []string{}}
		for _, ref := range a.Vm {
			v := vmObj(ref)
			s.VMs = append(s.VMs, v.Name)
			if v.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
				s.State = "started"
			}
		}
		sort.Strings(s.VMs)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func findVM(name string) *simulator.VirtualMachine {
	for _, e := range simulator.Map.All("VirtualMachine") {
		if v := e.(*simulator.VirtualMachine); v.Name == name {
			return v
		}
	}
	return nil
}

func listAt(q url.Values, key string, i int) string {
	parts := strings.Split(q.Get(key), ",")
	if i < len(parts) {
		return parts[i]
	}
	return ""
}

func createVAppControl(q url.Values) string {
	var clusterPool *simulator.ResourcePool
	for _, e := range simulator.Map.All("ClusterComputeResource") {
		c := e.(*simulator.ClusterComputeResource)
		clusterPool = simulator.Map.Get(*c.ResourcePool).(*simulator.ResourcePool)
	}
	if clusterPool == nil {
		return "no cluster"
	}
	var members []*simulator.VirtualMachine
	for _, name := range strings.Split(q.Get("vms"), ",") {
		v := findVM(name)
		if v == nil {
			return "no such vm " + name
		}
		members = append(members, v)
	}
	var res soap.HasFault
	simulator.Map.WithLock(clusterPool, func() {
		res = clusterPool.CreateVApp(&types.CreateVApp{This: clusterPool.Self, Name: q.Get("name"),
			ResSpec: types.DefaultResourceConfigSpec(), ConfigSpec: types.VAppConfigSpec{}})
	})
	if res.Fault() != nil {
		return "CreateVApp failed"
	}
	ref := res.(*methods.CreateVAppBody).Res.Returnval
	vapp := simulator.Map.Get(ref).(*simulator.VirtualApp)
	simulator.Map.Put(&ExtVirtualApp{vapp, types.ManagedObjectReference{Type: "ExtVirtualApp", Value: ref.Value}})
	var entities []types.VAppEntityConfigInfo
	for i, v := range members {
		old := simulator.Map.Get(*v.ResourcePool).(*simulator.ResourcePool)
		var left []types.ManagedObjectReference
		for _, r := range old.Vm {
			if r != v.Self {
				left = append(left, r)
			}
		}
		update(old, types.PropertyChange{Name: "vm", Val: left})
		update(vapp, types.PropertyChange{Name: "vm", Val: append(append([]types.ManagedObjectReference{}, vapp.Vm...), v.Self)})
		update(v, types.PropertyChange{Name: "resourcePool", Val: ref},
			types.PropertyChange{Name: "parentVApp", Val: ref})
		order, _ := strconv.Atoi(listAt(q, "order", i))
		delay, _ := strconv.Atoi(listAt(q, "delay", i))
		stop, start := listAt(q, "stop", i), listAt(q, "start", i)
		if stop == "" {
			stop = "powerOff"
		}
		if start == "" {
			start = "powerOn"
		}
		key := v.Self
		entities = append(entities, types.VAppEntityConfigInfo{Key: &key, Tag: v.Name,
			StartOrder: int32(order), StartAction: start, StopAction: stop, StopDelay: int32(delay)})
	}
	cfg := *vapp.VAppConfig
	cfg.EntityConfig = entities
	update(vapp, types.PropertyChange{Name: "vAppConfig", Val: &cfg})
	return ""
}

func guestControl(q url.Values) string {
	v := findVM(q.Get("name"))
	if v == nil {
		return "no such vm"
	}
	var changes []types.PropertyChange
	if ips := q.Get("ip"); ips != "" {
		all := strings.Split(ips, ",")
		nets := append([]types.GuestNicInfo{}, v.Guest.Net...)
		if len(nets) == 0 {
			nets = []types.GuestNicInfo{{Connected: true}}
		}
		nets[0].IpAddress = all
		changes = append(changes, types.PropertyChange{Name: "guest.ipAddress", Val: all[0]},
			types.PropertyChange{Name: "summary.guest.ipAddress", Val: all[0]},
			types.PropertyChange{Name: "guest.net", Val: nets})
	}
	if mac := q.Get("mac"); mac != "" {
		nets := append([]types.GuestNicInfo{}, v.Guest.Net...)
		if len(nets) > 0 {
			nets[0].MacAddress = mac
			changes = append(changes, types.PropertyChange{Name: "guest.net", Val: nets})
		}
		devices := append([]types.BaseVirtualDevice{}, v.Config.Hardware.Device...)
		for _, d := range devices {
			if card, ok := d.(types.BaseVirtualEthernetCard); ok {
				card.GetVirtualEthernetCard().MacAddress = mac
				break
			}
		}
		changes = append(changes, types.PropertyChange{Name: "config.hardware.device", Val: devices})
	}
	if u := q.Get("uuid"); u != "" {
		changes = append(changes, types.PropertyChange{Name: "config.uuid", Val: u},
			types.PropertyChange{Name: "summary.config.uuid", Val: u})
	}
	simulator.Map.WithLock(v, func() { simulator.Map.Update(v, changes) })
	return ""
}

// members is the vApp's entityConfig grouped by startOrder, ascending.
func members(a *simulator.VirtualApp) [][]types.VAppEntityConfigInfo {
	byOrder := map[int32][]types.VAppEntityConfigInfo{}
	var orders []int32
	for _, e := range a.VAppConfig.EntityConfig {
		if _, ok := byOrder[e.StartOrder]; !ok {
			orders = append(orders, e.StartOrder)
		}
		byOrder[e.StartOrder] = append(byOrder[e.StartOrder], e)
	}
	sort.Slice(orders, func(i, j int) bool { return orders[i] < orders[j] })
	var groups [][]types.VAppEntityConfigInfo
	for _, o := range orders {
		groups = append(groups, byOrder[o])
	}
	return groups
}

func anyOn(a *simulator.VirtualApp) bool {
	for _, ref := range a.Vm {
		if vmObj(ref).Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			return true
		}
	}
	return false
}

// stopMember applies a stop action to a running member (under mu).
func stopMember(v *simulator.VirtualMachine, action string) {
	if v.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		return
	}
	switch action {
	case "none":
	case "suspend":
		setPower(v, types.VirtualMachinePowerStateSuspended)
	case "guestShutdown":
		if !tools[v.Name] {
			setPower(v, types.VirtualMachinePowerStatePoweredOff)
			return
		}
		if hang[v.Name] {
			return
		}
		go func() {
			time.Sleep(*guestDelay)
			mu.Lock()
			defer mu.Unlock()
			if !hang[v.Name] && v.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
				setPower(v, types.VirtualMachinePowerStatePoweredOff)
			}
		}()
	default:
		setPower(v, types.VirtualMachinePowerStatePoweredOff)
	}
}

func (a *ExtVirtualApp) PowerOffVAppTask(req *types.PowerOffVApp_Task) soap.HasFault {
	if f := restricted(); f != nil {
		return &methods.PowerOffVApp_TaskBody{Fault_: f}
	}
	vapp := a.VirtualApp
	ref := startTask(vapp, "PowerOffVApp_Task", func(t *ExtTask) (types.AnyType, types.BaseMethodFault) {
		mu.Lock()
		if !anyOn(vapp) {
			mu.Unlock()
			return nil, &types.InvalidState{}
		}
		if req.Force {
			for _, r := range vapp.Vm {
				stopMember(vmObj(r), "powerOff")
			}
			mu.Unlock()
			return nil, nil
		}
		groups := members(vapp)
		mu.Unlock()
		for i := len(groups) - 1; i >= 0; i-- {
			if t.isCanceled() {
				return nil, &types.RequestCanceled{}
			}
			var wait int32
			mu.Lock()
			for _, e := range groups[i] {
				stopMember(vmObj(*e.Key), e.StopAction)
				if e.StopDelay > wait {
					wait = e.StopDelay
				}
			}
			mu.Unlock()
			end := time.Now().Add(time.Duration(wait) * time.Second)
			for time.Now().Before(end) && !t.isCanceled() {
				mu.Lock()
				on := false
				for _, e := range groups[i] {
					on = on || vmObj(*e.Key).Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
				}
				mu.Unlock()
				if !on {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		return nil, nil
	})
	return &methods.PowerOffVApp_TaskBody{Res: &types.PowerOffVApp_TaskResponse{Returnval: ref}}
}

func (a *ExtVirtualApp) PowerOnVAppTask(req *types.PowerOnVApp_Task) soap.HasFault {
	if f := restricted(); f != nil {
		return &methods.PowerOnVApp_TaskBody{Fault_: f}
	}
	vapp := a.VirtualApp
	ref := startTask(vapp, "PowerOnVApp_Task", func(t *ExtTask) (types.AnyType, types.BaseMethodFault) {
		mu.Lock()
		for _, r := range vapp.Vm {
			h := hostObj(*vmObj(r).Runtime.Host)
			if h.Runtime.ConnectionState != types.HostSystemConnectionStateConnected || h.Runtime.InMaintenanceMode {
				mu.Unlock()
				return nil, &types.InvalidState{}
			}
		}
		groups := members(vapp)
		mu.Unlock()
		for _, group := range groups {
			if t.isCanceled() {
				return nil, &types.RequestCanceled{}
			}
			var wait int32
			mu.Lock()
			for _, e := range group {
				v := vmObj(*e.Key)
				if e.StartAction == "powerOn" && v.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
					setPower(v, types.VirtualMachinePowerStatePoweredOn)
				}
				if e.StartDelay > wait {
					wait = e.StartDelay
				}
			}
			mu.Unlock()
			time.Sleep(time.Duration(wait) * time.Second)
		}
		return nil, nil
	})
	return &methods.PowerOnVApp_TaskBody{Res: &types.PowerOnVApp_TaskResponse{Returnval: ref}}
}

// extraControl runs a control of extraControls (under mu): its error ("" when done), and
// whether path is one at all.
func extraControl(path string, q url.Values) (string, bool) {
	f, ok := extraControls[path]
	if !ok {
		return "", false
	}
	return f(q), true
}
