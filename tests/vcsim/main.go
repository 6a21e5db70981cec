// vcsim-ext: Debian's govmomi vCenter simulator (0.24.2) with the behaviour upsagent's
// vsphere backend needs and the stock simulator lacks.  Written for upsagent's tests,
// following vCenter's documented behaviour (docs: EnterMaintenanceMode_Task,
// ShutdownHost_Task, ShutdownGuest, CancelTask).
//
// Model: one datacenter, one DRS cluster (fullyAutomated) of -host hosts DC0_C0_H<i>,
// -vm VMs per host named <host>_VM<j>, powered on, VMware Tools running.
//
// Overridden (everything else is the stock simulator):
//
//   - Login: only -username/-password are accepted (InvalidLogin otherwise).
//   - EnterMaintenanceMode_Task: asynchronous; moves one powered-on VM every -migrate-delay
//     to the usable host of the cluster with the fewest VMs (connected, powered on, not in or
//     entering maintenance); with none (or DRS not fullyAutomated) it waits, and fails with
//     Timedout at `timeout` (> 0); cancelable (RequestCanceled, the host stays out of
//     maintenance); InvalidState on a host in maintenance or not connected.
//   - ExitMaintenanceMode_Task: InvalidState unless in maintenance; the VMs maintenance
//     moved away come back afterwards (one per -migrate-delay), as DRS would rebalance.
//   - ShutdownHost_Task(force): InvalidState outside maintenance without force; the host goes
//     poweredOff/notResponding after -host-down-delay, its running VMs die with it.
//   - ShutdownGuest: ToolsUnavailable without running tools; otherwise the VM powers off
//     after -guest-delay, unless it is marked to hang.
//   - PowerOnVM_Task: InvalidState on a host down or in maintenance; tools run again.
//   - Task.CancelTask on the tasks above.
//   - -free-esxi: the licence is esxBasic (free vSphere Hypervisor) and every write above,
//     and PowerOffVM_Task, fails with RestrictedVersion, as free ESXi answers.
//   - AuthorizationManager.HasPrivilegeOnEntity (with -deny-priv): false for those
//     privileges (the stock simulator grants every privilege).
//
// -esx (esx.go): a direct ESXi endpoint instead (about.apiType HostAgent, the simulator's
// ESX model): one host named -esx-name (its hardware uuid derived from the name as the
// vCenter model derives its hosts', so the two simulators agree on a host's identity) with
// -vm VMs <name>_VM<j>; the overrides above apply (there is no DRS: EnterMaintenanceMode
// completes once the VMs are off), and once a ShutdownHost_Task has taken the host down
// the process exits: the endpoint goes away as a real host's does.  -extra-vm NAME=IP,...
// adds VMs (powered on, tools running, guest.ipAddress IP; e.g. the vCenter's own VM) on
// the ESXi host, or on the last host of the vCenter model.  -lockdown H,... shows those
// hosts in lockdown mode (config.lockdownMode lockdownNormal; logins are not refused).
// Every VM has a MAC address of its own (00:50:56:00:00:<i>).
//
// Control (plain HTTP on the same port, for tests):
//
//	GET  /_ext/state                          hosts and VMs as JSON
//	POST /_ext/host?name=H&power=on|off       power returns (boots after -host-boot-delay)
//	                                          / is cut (its VMs die)
//	POST /_ext/vm?name=V&tools=running|notRunning&hang=0|1
//	POST /_ext/drs?behavior=fullyAutomated|manual
//	POST /_ext/down?on=1|0                    vCenter stops/starts answering SOAP (503)
//	POST /_ext/vapp, /_ext/guest              vApps and guest identity: see vapp.go
//	POST /_ext/stuck?vm=V&on=1|0              V's migration never ends (see below)
//	GET  /_ext/calls                          the SOAP calls (not reads) made on each
//	                                          host and the VMs it ran then, by host name
//
// A migration that never ends (-stuck, /_ext/stuck): an EnterMaintenanceMode_Task moves
// the other VMs, never that one: the VM stays, the progress stays, the task keeps
// running, still cancelable (RequestCanceled) and still failing with Timedout once its
// `timeout` (> 0) has passed, as vCenter's EnterMaintenanceMode_Task does (API reference:
// "timeout: the maximum time in seconds that the task should wait ... Timedout: thrown if
// the timeout expired"); with timeout 0 it runs until cancelled.
//
// The first line on stdout is "vCenter <url> sha256=<fingerprint>" once it listens.
//
// Hooking in: the simulator dispatches a SOAP call by reflection on the registry entry of
// `_this`.  Many places of the simulator type-assert hosts to *simulator.HostSystem, so the
// entries are not replaced: a shadow object (type ExtHostSystem, ExtVirtualMachine,
// ExtTask) is registered next to each, and a front HTTP handler rewrites `_this` to the
// shadow type for the overridden methods only.  State changes are made on the real objects
// through Map.Update, so property collectors see them.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

var (
	listen        = flag.String("l", "127.0.0.1:0", "listen address")
	nhost         = flag.Int("host", 3, "hosts in the cluster")
	nvm           = flag.Int("vm", 2, "VMs per host")
	username      = flag.String("username", "user", "the one user")
	password      = flag.String("password", "pass", "its password")
	migrateDelay  = flag.Duration("migrate-delay", 200*time.Millisecond, "time per VM migration")
	guestDelay    = flag.Duration("guest-delay", 200*time.Millisecond, "guest shutdown time")
	hostDownDelay = flag.Duration("host-down-delay", 200*time.Millisecond, "host shutdown time")
	hostBootDelay = flag.Duration("host-boot-delay", 200*time.Millisecond, "host boot time")
	noTools       = flag.String("no-tools", "", "comma-separated VMs without tools")
	hangVMs       = flag.String("hang", "", "comma-separated VMs that ignore guest shutdown")
	useTLS        = flag.Bool("tls", false, "serve https with a fresh P-256 certificate")
	certOut       = flag.String("cert-out", "", "write the certificate (PEM) here")
	sessionIdle   = flag.Duration("session-idle", 0, "expire sessions idle this long")
	freeESXi      = flag.Bool("free-esxi", false, "act as a free ESXi: esxBasic licence, writes refused with RestrictedVersion")
	denyPrivs     = flag.String("deny-priv", "", "comma-separated privileges HasPrivilegeOnEntity denies")
	esxMode       = flag.Bool("esx", false, "a direct ESXi endpoint (HostAgent), one host (esx.go)")
	esxName       = flag.String("esx-name", "localhost.localdomain", "-esx: the host's name")
	extraVMs      = flag.String("extra-vm", "", "comma-separated NAME=IP: extra VMs (esx.go)")
	lockdown      = flag.String("lockdown", "", "comma-separated hosts in lockdown mode (esx.go)")
	stuckVMs      = flag.String("stuck", "", "comma-separated VMs whose migration never ends")
)

// ext is the extension's own state, under mu.
var (
	mu        sync.Mutex
	entering  = map[string]bool{}   // host moid -> an enter task runs
	evacuated = map[string]string{} // vm moid -> host moid it was moved off
	hang      = map[string]bool{}   // vm name -> ignores ShutdownGuest
	tools     = map[string]bool{}   // vm name -> tools installed
	drsAuto   = true
	down      = false
)

func hostObj(ref types.ManagedObjectReference) *simulator.HostSystem {
	return simulator.Map.Get(ref).(*simulator.HostSystem)
}

func vmObj(ref types.ManagedObjectReference) *simulator.VirtualMachine {
	return simulator.Map.Get(ref).(*simulator.VirtualMachine)
}

func realRef(ref types.ManagedObjectReference) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: strings.TrimPrefix(ref.Type, "Ext"), Value: ref.Value}
}

func update(obj mo.Reference, changes ...types.PropertyChange) {
	simulator.Map.WithLock(obj, func() { simulator.Map.Update(obj, changes) })
}

func usable(h *simulator.HostSystem) bool {
	return h.Runtime.ConnectionState == types.HostSystemConnectionStateConnected &&
		h.Runtime.PowerState == types.HostSystemPowerStatePoweredOn &&
		!h.Runtime.InMaintenanceMode && !entering[h.Self.Value]
}

func running(h *simulator.HostSystem) []types.ManagedObjectReference {
	var on []types.ManagedObjectReference
	for _, ref := range h.Vm {
		if vmObj(ref).Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			on = append(on, ref)
		}
	}
	return on
}

func clusterHosts(h *simulator.HostSystem) []*simulator.HostSystem {
	var all []*simulator.HostSystem
	for _, e := range simulator.Map.All("HostSystem") {
		o := e.(*simulator.HostSystem)
		if o.Parent != nil && h.Parent != nil && *o.Parent == *h.Parent {
			all = append(all, o)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// move puts a VM on another host: both hosts' vm lists and the VM's runtime.host.
func move(vm types.ManagedObjectReference, from, to *simulator.HostSystem) {
	var left []types.ManagedObjectReference
	for _, r := range from.Vm {
		if r != vm {
			left = append(left, r)
		}
	}
	update(from, types.PropertyChange{Name: "vm", Val: left})
	update(to, types.PropertyChange{Name: "vm", Val: append(append([]types.ManagedObjectReference{}, to.Vm...), vm)})
	v := vmObj(vm)
	update(v, types.PropertyChange{Name: "runtime.host", Val: to.Self},
		types.PropertyChange{Name: "summary.runtime.host", Val: to.Self})
}

func setPower(v *simulator.VirtualMachine, state types.VirtualMachinePowerState) {
	status := types.VirtualMachineToolsRunningStatusGuestToolsNotRunning
	if state == types.VirtualMachinePowerStatePoweredOn && tools[v.Name] {
		status = types.VirtualMachineToolsRunningStatusGuestToolsRunning
	}
	simulator.Map.WithLock(v, func() {
		if v.Guest != nil {
			v.Guest.ToolsRunningStatus = string(status)
		}
		simulator.Map.Update(v, []types.PropertyChange{
			{Name: "runtime.powerState", Val: state},
			{Name: "summary.runtime.powerState", Val: state},
		})
	})
}

func hostDown(h *simulator.HostSystem) {
	for _, ref := range running(h) {
		setPower(vmObj(ref), types.VirtualMachinePowerStatePoweredOff)
	}
	update(h, types.PropertyChange{Name: "runtime.powerState", Val: types.HostSystemPowerStatePoweredOff},
		types.PropertyChange{Name: "runtime.connectionState", Val: types.HostSystemConnectionStateNotResponding})
}

// ExtTask is a cancelable task of the extension.
type ExtTask struct {
	*simulator.Task
	ref      types.ManagedObjectReference
	canceled chan struct{}
	once     sync.Once
}

func (t *ExtTask) Reference() types.ManagedObjectReference { return t.ref }

func (t *ExtTask) CancelTask(req *types.CancelTask) soap.HasFault {
	body := &methods.CancelTaskBody{}
	state := t.Task.Info.State
	if state != types.TaskInfoStateRunning && state != types.TaskInfoStateQueued {
		body.Fault_ = simulator.Fault("task is not running", &types.InvalidState{})
		return body
	}
	t.once.Do(func() { close(t.canceled) })
	body.Res = &types.CancelTaskResponse{}
	return body
}

func (t *ExtTask) isCanceled() bool {
	select {
	case <-t.canceled:
		return true
	default:
		return false
	}
}

// startTask creates a cancelable task and runs it in the background.
func startTask(e mo.Reference, name string, run func(*ExtTask) (types.AnyType, types.BaseMethodFault)) types.ManagedObjectReference {
	ext := &ExtTask{canceled: make(chan struct{})}
	task := simulator.CreateTask(e, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return run(ext)
	})
	task.Info.Name = name
	task.Info.Cancelable = true
	ext.Task = task
	ext.ref = types.ManagedObjectReference{Type: "ExtTask", Value: task.Self.Value}
	simulator.Map.Put(ext)
	go task.Run()
	return task.Self
}

// ExtHostSystem shadows a HostSystem.
type ExtHostSystem struct {
	*simulator.HostSystem
	ref types.ManagedObjectReference
}

func (h *ExtHostSystem) Reference() types.ManagedObjectReference { return h.ref }

// restricted is the fault free ESXi answers every write with (-free-esxi), or nil.
func restricted() *soap.Fault {
	if !*freeESXi {
		return nil
	}
	return simulator.Fault("Current license or ESXi version prohibits execution of the requested operation.",
		&types.RestrictedVersion{})
}

func (h *ExtHostSystem) EnterMaintenanceModeTask(req *types.EnterMaintenanceMode_Task) soap.HasFault {
	if f := restricted(); f != nil {
		return &methods.EnterMaintenanceMode_TaskBody{Fault_: f}
	}
	host := h.HostSystem
	timeout := time.Duration(req.Timeout) * time.Second
	ref := startTask(host, "EnterMaintenanceMode_Task", func(t *ExtTask) (types.AnyType, types.BaseMethodFault) {
		mu.Lock()
		if host.Runtime.InMaintenanceMode || entering[host.Self.Value] ||
			host.Runtime.ConnectionState != types.HostSystemConnectionStateConnected {
			mu.Unlock()
			return nil, &types.InvalidState{}
		}
		entering[host.Self.Value] = true
		mu.Unlock()
		defer func() { mu.Lock(); delete(entering, host.Self.Value); mu.Unlock() }()
		start := time.Now()
		for {
			select {
			case <-t.canceled:
				return nil, &types.RequestCanceled{}
			case <-time.After(*migrateDelay):
			}
			if t.isCanceled() {
				return nil, &types.RequestCanceled{}
			}
			mu.Lock()
			if host.Runtime.ConnectionState != types.HostSystemConnectionStateConnected {
				mu.Unlock()
				return nil, &types.HostNotConnected{}
			}
			on := running(host)
			if len(on) == 0 {
				update(host, types.PropertyChange{Name: "runtime.inMaintenanceMode", Val: true})
				mu.Unlock()
				return nil, nil
			}
			var target *simulator.HostSystem
			if drsAuto {
				for _, o := range clusterHosts(host) {
					if o != host && usable(o) && (target == nil || len(o.Vm) < len(target.Vm)) {
						target = o
					}
				}
			}
			if next, ok := nextToMove(on); target != nil && ok {
				move(next, host, target)
				evacuated[next.Value] = host.Self.Value
			}
			mu.Unlock()
			if timeout > 0 && time.Since(start) >= timeout {
				return nil, &types.Timedout{}
			}
			progress := int32(100 * (1 - float64(len(on))/float64(len(host.Vm)+1)))
			update(t.Task, types.PropertyChange{Name: "info.progress", Val: progress})
		}
	})
	return &methods.EnterMaintenanceMode_TaskBody{Res: &types.EnterMaintenanceMode_TaskResponse{Returnval: ref}}
}

func (h *ExtHostSystem) ExitMaintenanceModeTask(req *types.ExitMaintenanceMode_Task) soap.HasFault {
	if f := restricted(); f != nil {
		return &methods.ExitMaintenanceMode_TaskBody{Fault_: f}
	}
	host := h.HostSystem
	ref := startTask(host, "ExitMaintenanceMode_Task", func(t *ExtTask) (types.AnyType, types.BaseMethodFault) {
		mu.Lock()
		defer mu.Unlock()
		if !host.Runtime.InMaintenanceMode || entering[host.Self.Value] ||
			host.Runtime.ConnectionState != types.HostSystemConnectionStateConnected {
			return nil, &types.InvalidState{}
		}
		update(host, types.PropertyChange{Name: "runtime.inMaintenanceMode", Val: false})
		go rebalance(host)
		return nil, nil
	})
	return &methods.ExitMaintenanceMode_TaskBody{Res: &types.ExitMaintenanceMode_TaskResponse{Returnval: ref}}
}

// rebalance brings back the VMs maintenance moved off host, as DRS would.
func rebalance(host *simulator.HostSystem) {
	for {
		time.Sleep(*migrateDelay)
		mu.Lock()
		moved := false
		if usable(host) {
			for vm, origin := range evacuated {
				if origin != host.Self.Value {
					continue
				}
				delete(evacuated, vm)
				ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: vm}
				v := vmObj(ref)
				from := hostObj(*v.Runtime.Host)
				if v.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn && usable(from) {
					move(ref, from, host)
					moved = true
					break
				}
			}
		}
		mu.Unlock()
		if !moved {
			return
		}
	}
}

func (h *ExtHostSystem) ShutdownHostTask(req *types.ShutdownHost_Task) soap.HasFault {
	if f := restricted(); f != nil {
		return &methods.ShutdownHost_TaskBody{Fault_: f}
	}
	host := h.HostSystem
	ref := startTask(host, "ShutdownHost_Task", func(t *ExtTask) (types.AnyType, types.BaseMethodFault) {
		mu.Lock()
		defer mu.Unlock()
		if host.Runtime.ConnectionState != types.HostSystemConnectionStateConnected ||
			(!req.Force && !host.Runtime.InMaintenanceMode) {
			return nil, &types.InvalidState{}
		}
		go func() {
			time.Sleep(*hostDownDelay)
			mu.Lock()
			hostDown(host)
			mu.Unlock()
			esxHostDown()
		}()
		return nil, nil
	})
	return &methods.ShutdownHost_TaskBody{Res: &types.ShutdownHost_TaskResponse{Returnval: ref}}
}

// ExtVirtualMachine shadows a VirtualMachine.
type ExtVirtualMachine struct {
	*simulator.VirtualMachine
	ref types.ManagedObjectReference
}

func (v *ExtVirtualMachine) Reference() types.ManagedObjectReference { return v.ref }

func (v *ExtVirtualMachine) ShutdownGuest(req *types.ShutdownGuest) soap.HasFault {
	vm := v.VirtualMachine
	body := &methods.ShutdownGuestBody{}
	if f := restricted(); f != nil {
		body.Fault_ = f
		return body
	}
	mu.Lock()
	defer mu.Unlock()
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		body.Fault_ = simulator.Fault("", &types.InvalidPowerState{
			RequestedState: types.VirtualMachinePowerStatePoweredOn, ExistingState: vm.Runtime.PowerState})
		return body
	}
	if !tools[vm.Name] {
		body.Fault_ = simulator.Fault("VMware Tools are not running", &types.ToolsUnavailable{})
		return body
	}
	if !hang[vm.Name] {
		go func() {
			time.Sleep(*guestDelay)
			mu.Lock()
			defer mu.Unlock()
			if !hang[vm.Name] && vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
				setPower(vm, types.VirtualMachinePowerStatePoweredOff)
			}
		}()
	}
	body.Res = &types.ShutdownGuestResponse{}
	return body
}

// PowerOffVMTask is the stock one, refused on a free ESXi.
func (v *ExtVirtualMachine) PowerOffVMTask(ctx *simulator.Context, req *types.PowerOffVM_Task) soap.HasFault {
	if f := restricted(); f != nil {
		return &methods.PowerOffVM_TaskBody{Fault_: f}
	}
	vm := v.VirtualMachine
	var res soap.HasFault
	simulator.Map.WithLock(vm, func() {
		req.This = vm.Self
		res = vm.PowerOffVMTask(ctx, req)
	})
	return res
}

var privRe = regexp.MustCompile(`<privId>([^<]*)</privId>`)

// hasPrivilegeOnEntity answers AuthorizationManager.HasPrivilegeOnEntity itself: false for
// the -deny-priv privileges.  (The stock one grants everything, and govmomi's encoder drops
// false members of a boolean array, so the answer is written here.)
func hasPrivilegeOnEntity(w http.ResponseWriter, body []byte) {
	denied := split(*denyPrivs)
	var out strings.Builder
	out.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">` +
		`<soapenv:Body><HasPrivilegeOnEntityResponse xmlns="urn:vim25">`)
	for _, m := range privRe.FindAllSubmatch(body, -1) {
		fmt.Fprintf(&out, "<returnval>%v</returnval>", !denied[string(m[1])])
	}
	out.WriteString(`</HasPrivilegeOnEntityResponse></soapenv:Body></soapenv:Envelope>`)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Write([]byte(out.String()))
}

func (v *ExtVirtualMachine) PowerOnVMTask(ctx *simulator.Context, req *types.PowerOnVM_Task) soap.HasFault {
	if f := restricted(); f != nil {
		return &methods.PowerOnVM_TaskBody{Fault_: f}
	}
	vm := v.VirtualMachine
	mu.Lock()
	h := hostObj(*vm.Runtime.Host)
	ok := h.Runtime.ConnectionState == types.HostSystemConnectionStateConnected && !h.Runtime.InMaintenanceMode
	mu.Unlock()
	if !ok {
		return &methods.PowerOnVM_TaskBody{Fault_: simulator.Fault("host is down or in maintenance", &types.InvalidState{})}
	}
	var res soap.HasFault
	simulator.Map.WithLock(vm, func() {
		req.This = vm.Self
		res = vm.PowerOnVMTask(ctx, req)
	})
	mu.Lock()
	if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn && tools[vm.Name] {
		setPower(vm, types.VirtualMachinePowerStatePoweredOn)
	}
	mu.Unlock()
	return res
}

var overridden = map[string]string{
	"EnterMaintenanceMode_Task": "HostSystem", "ExitMaintenanceMode_Task": "HostSystem",
	"ShutdownHost_Task": "HostSystem", "ShutdownGuest": "VirtualMachine",
	"PowerOnVM_Task": "VirtualMachine", "PowerOffVM_Task": "VirtualMachine", "CancelTask": "Task",
}

var methodRe = regexp.MustCompile(`<(?:\w+:)?(\w+) xmlns="urn:vim25"><_this[^>]*? type="(\w+)"[^>]*>([^<]*)</_this>`)

func front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_ext/") {
			if faultControl(w, r) {
				return
			}
			control(w, r)
			return
		}
		mu.Lock()
		isDown := down
		mu.Unlock()
		if isDown {
			http.Error(w, "vCenter is down", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/sdk") {
			body, _ := ioutil.ReadAll(r.Body)
			if m := methodRe.FindSubmatchIndex(body); m != nil {
				method, typ := string(body[m[2]:m[3]]), string(body[m[4]:m[5]])
				value := string(body[m[6]:m[7]])
				if method == "HasPrivilegeOnEntity" && *denyPrivs != "" {
					hasPrivilegeOnEntity(w, body)
					return
				}
				recordCall(method, typ, value)
				ref := types.ManagedObjectReference{Type: "Ext" + typ, Value: value}
				if overridden[method] == typ && simulator.Map.Get(ref) != nil {
					body = append(append(append([]byte{}, body[:m[4]]...), []byte("Ext"+typ)...), body[m[5]:]...)
				}
			}
			r.Body = ioutil.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		next.ServeHTTP(w, r)
	})
}

type vmState struct {
	Name  string `json:"name"`
	Host  string `json:"host"`
	Power string `json:"power"`
	Tools string `json:"tools"`
	Hang  bool   `json:"hang"`
}

type hostState struct {
	Name        string   `json:"name"`
	Connection  string   `json:"connection"`
	Power       string   `json:"power"`
	Maintenance bool     `json:"maintenance"`
	Entering    bool     `json:"entering"`
	VMs         []string `json:"vms"`
}

func control(w http.ResponseWriter, r *http.Request) {
	mu.Lock()
	defer mu.Unlock()
	q := r.URL.Query()
	find := func(kind, name string) mo.Entity {
		for _, e := range simulator.Map.All(kind) {
			if e.Entity().Name == name {
				return e
			}
		}
		return nil
	}
	switch r.URL.Path {
	case "/_ext/state":
		state := struct {
			Hosts []hostState `json:"hosts"`
			VMs   []vmState   `json:"vms"`
			DRS   bool        `json:"drs"`
			Down  bool        `json:"down"`
			VApps []vappState `json:"vapps"` // vapp.go
		}{DRS: drsAuto, Down: down, VApps: vappStates()}
		for _, e := range simulator.Map.All("HostSystem") {
			h := e.(*simulator.HostSystem)
			hs := hostState{Name: h.Name, Connection: string(h.Runtime.ConnectionState),
				Power: string(h.Runtime.PowerState), Maintenance: h.Runtime.InMaintenanceMode,
				Entering: entering[h.Self.Value], VMs: []string{}}
			for _, ref := range h.Vm {
				hs.VMs = append(hs.VMs, vmObj(ref).Name)
			}
			sort.Strings(hs.VMs)
			state.Hosts = append(state.Hosts, hs)
		}
		for _, e := range simulator.Map.All("VirtualMachine") {
			v := e.(*simulator.VirtualMachine)
			state.VMs = append(state.VMs, vmState{Name: v.Name, Host: hostObj(*v.Runtime.Host).Name,
				Power: string(v.Runtime.PowerState), Tools: v.Guest.ToolsRunningStatus, Hang: hang[v.Name]})
		}
		sort.Slice(state.Hosts, func(i, j int) bool { return state.Hosts[i].Name < state.Hosts[j].Name })
		sort.Slice(state.VMs, func(i, j int) bool { return state.VMs[i].Name < state.VMs[j].Name })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(state)
		return
	case "/_ext/host":
		e := find("HostSystem", q.Get("name"))
		if e == nil {
			http.Error(w, "no such host", http.StatusNotFound)
			return
		}
		h := e.(*simulator.HostSystem)
		if q.Get("power") == "off" {
			hostDown(h)
		} else {
			update(h, types.PropertyChange{Name: "runtime.powerState", Val: types.HostSystemPowerStatePoweredOn})
			go func() {
				time.Sleep(*hostBootDelay)
				mu.Lock()
				update(h, types.PropertyChange{Name: "runtime.connectionState", Val: types.HostSystemConnectionStateConnected})
				mu.Unlock()
			}()
		}
	case "/_ext/vm":
		e := find("VirtualMachine", q.Get("name"))
		if e == nil {
			http.Error(w, "no such vm", http.StatusNotFound)
			return
		}
		v := e.(*simulator.VirtualMachine)
		if t := q.Get("tools"); t != "" {
			tools[v.Name] = t == "running"
			setPower(v, v.Runtime.PowerState)
		}
		if h := q.Get("hang"); h != "" {
			hang[v.Name] = h == "1"
		}
	case "/_ext/drs":
		drsAuto = q.Get("behavior") == "fullyAutomated"
	case "/_ext/down":
		down = q.Get("on") == "1"
	default:
		if msg, known := extraControl(r.URL.Path, q); !known || msg != "" {
			if !known {
				msg = "unknown control"
			}
			http.Error(w, msg, http.StatusNotFound)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

// -- faults for the end-to-end tests: migrations that never end, the calls made ------

var (
	stuck = map[string]bool{}     // vm name -> its migration never ends (under mu)
	calls = map[string][]string{} // host name -> "Method" or "Method VM" (under callsMu)
	// callsMu is separate from mu: recordCall runs in front() before the call itself
	callsMu sync.Mutex
)

// nextToMove: the first of the running VMs whose migration ends, if any (under mu); a
// VM whose migration never ends stays, and so does the task.
func nextToMove(on []types.ManagedObjectReference) (types.ManagedObjectReference, bool) {
	for _, ref := range on {
		if !stuck[vmObj(ref).Name] {
			return ref, true
		}
	}
	return types.ManagedObjectReference{}, false
}

// recordCall notes a SOAP call on a host, on a VM (under the host it runs on now) or on
// a task (under its host), so that a test can tell that a host was never touched.  Reads
// (pyvmomi's Fetch of a property) are not calls on the host.
func recordCall(method, typ, value string) {
	if method == "Fetch" {
		return
	}
	ref := types.ManagedObjectReference{Type: typ, Value: value}
	host, what := "", method
	mu.Lock()
	switch typ {
	case "HostSystem":
		if e, ok := simulator.Map.Get(ref).(*simulator.HostSystem); ok {
			host = e.Name
		}
	case "VirtualMachine":
		if v, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); ok && v.Runtime.Host != nil {
			host, what = hostObj(*v.Runtime.Host).Name, method+" "+v.Name
		}
	case "Task":
		if t, ok := simulator.Map.Get(ref).(*simulator.Task); ok && t.Info.Entity != nil &&
			t.Info.Entity.Type == "HostSystem" {
			host, what = hostObj(*t.Info.Entity).Name, method+" "+t.Info.DescriptionId
		}
	}
	mu.Unlock()
	if host == "" {
		return
	}
	callsMu.Lock()
	calls[host] = append(calls[host], what)
	callsMu.Unlock()
}

// faultControl answers /_ext/stuck and /_ext/calls; false for the other controls.
func faultControl(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case "/_ext/stuck":
		name := r.URL.Query().Get("vm")
		mu.Lock()
		found := false
		for _, e := range simulator.Map.All("VirtualMachine") {
			found = found || e.Entity().Name == name
		}
		if found {
			stuck[name] = r.URL.Query().Get("on") == "1"
		}
		mu.Unlock()
		if !found {
			http.Error(w, "no such vm", http.StatusNotFound)
			return true
		}
		fmt.Fprintln(w, "ok")
	case "/_ext/calls":
		callsMu.Lock()
		defer callsMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(calls)
	default:
		return false
	}
	return true
}

func certificate() (tls.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:        true, BasicConstraintsValid: true,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der
}

func split(s string) map[string]bool {
	set := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		if name != "" {
			set[name] = true
		}
	}
	return set
}

func main() {
	flag.Parse()
	simulator.SessionIdleTimeout = *sessionIdle
	extras := parseExtraVMs(*extraVMs)
	var m *simulator.Model
	if *esxMode {
		m = esxModel(len(extras))
	} else {
		m = simulator.VPX()
		m.Host = 0
		m.ClusterHost = *nhost
		m.Machine = *nhost**nvm + len(extras)
	}
	if err := m.Create(); err != nil {
		log.Fatal(err)
	}
	m.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	var der []byte
	if *useTLS {
		var cert tls.Certificate
		cert, der = certificate()
		m.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		if *certOut != "" {
			pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
			if err := ioutil.WriteFile(*certOut, pemBytes, 0o644); err != nil {
				log.Fatal(err)
			}
		}
	}

	// place the VMs: host i runs <host>_VM0..; DRS fully automated
	var hosts []*simulator.HostSystem
	for _, e := range simulator.Map.All("HostSystem") {
		hosts = append(hosts, e.(*simulator.HostSystem))
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Name < hosts[j].Name })
	var vms []*simulator.VirtualMachine
	for _, e := range simulator.Map.All("VirtualMachine") {
		vms = append(vms, e.(*simulator.VirtualMachine))
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	if *esxMode {
		esxSetup(hosts[0])
	}
	noToolsSet, hangSet := split(*noTools), split(*hangVMs)
	for name := range split(*stuckVMs) {
		stuck[name] = true
	}
	for i, v := range vms {
		h := hosts[(i / *nvm)%len(hosts)]
		name := fmt.Sprintf("%s_VM%d", h.Name, i%*nvm)
		uniqueMAC(v, i)
		if extra := i - len(vms) + len(extras); extra >= 0 {
			h, name = hosts[len(hosts)-1], extras[extra].name
			setGuestIP(v, extras[extra].ip)
		}
		from := hostObj(*v.Runtime.Host)
		if from != h {
			move(v.Self, from, h)
		}
		update(v, types.PropertyChange{Name: "name", Val: name},
			types.PropertyChange{Name: "config.name", Val: name},
			types.PropertyChange{Name: "summary.config.name", Val: name})
		tools[name] = !noToolsSet[name]
		hang[name] = hangSet[name]
		if v.Guest == nil {
			v.Guest = &types.GuestInfo{}
		}
		setPower(v, types.VirtualMachinePowerStatePoweredOn)
		simulator.Map.Put(&ExtVirtualMachine{v, types.ManagedObjectReference{Type: "ExtVirtualMachine", Value: v.Self.Value}})
	}
	setLockdown(hosts, split(*lockdown))
	for _, h := range hosts {
		simulator.Map.Put(&ExtHostSystem{h, types.ManagedObjectReference{Type: "ExtHostSystem", Value: h.Self.Value}})
	}
	for _, e := range simulator.Map.All("ClusterComputeResource") {
		c := e.(*simulator.ClusterComputeResource)
		if cfg, ok := c.ConfigurationEx.(*types.ClusterConfigInfoEx); ok {
			enabled := true
			cfg.DrsConfig.Enabled = &enabled
			cfg.DrsConfig.DefaultVmBehavior = types.DrsBehaviorFullyAutomated
		}
	}

	if *freeESXi {
		if e := simulator.Map.Get(licenseManager()); e != nil {
			lm := e.(*simulator.LicenseManager)
			lm.Licenses = []types.LicenseManagerLicenseInfo{{
				LicenseKey: "00000-00000-00000-00000-00000", EditionKey: "esxBasic",
				Name: "VMware vSphere 7 Hypervisor", Total: 0, Used: 1, CostUnit: "cpuPackage"}}
		}
	}

	srv := m.Service.NewServer()
	srv.Config.Handler = front(srv.Config.Handler)
	u := *srv.URL
	u.User = nil
	line := "vCenter " + u.String()
	if *esxMode {
		line = "ESXi " + u.String()
	}
	if der != nil {
		sum := sha256.Sum256(der)
		var hexes []string
		for _, b := range sum {
			hexes = append(hexes, fmt.Sprintf("%02X", b))
		}
		line += " sha256=" + strings.Join(hexes, ":")
	}
	fmt.Println(line)
	os.Stdout.Sync()
	select {}
}
