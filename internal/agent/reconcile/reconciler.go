package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"

	"github.com/outposthq/outpost/internal/keylock"
)

// Log field names. Object data is never logged, only names and paths.
const (
	logRelease  = "release"
	logReleases = "releases"
	logRevision = "revision"
	logMode     = "mode"
	logObject   = "object"
	logObjects  = "objects"
	logFields   = "fields"
	logWatch    = "watch"
	logDuration = "duration"
	logError    = "error"
	logDeleted  = "deleted"
	// logOtherRelease names a second release claiming an object.
	logOtherRelease = "other_release"
	logHelmRevision = "helm_revision"
)

// Corrections of one object beyond flapLimit within flapWindow mean
// another writer fights the release: further corrections wait until the
// window has passed, and the object is reported drifted meanwhile.
const (
	flapLimit  = 5
	flapWindow = time.Minute
)

// Retry bounds of a failed release sync or object check.
const (
	retryBase = 200 * time.Millisecond
	retryMax  = 2 * time.Minute
)

// Reconciler keeps the cluster at the desired state of the releases it is
// given. Create it with New, give it the desired set with SetDesired (at
// any time, before or after Start) and run it with Start; only the leader
// among the agent's replicas should run it (see RunWhenLeader). Its
// methods are safe for concurrent use.
type Reconciler struct {
	opts    Options
	log     *slog.Logger
	helmLog *slog.Logger
	dyn     dynamic.Interface
	kube    kubernetes.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	reports *reportQueue
	// relLock serializes the syncs, confirmations and corrections of a
	// release inside the reconciler.
	relLock keylock.Locker
	// checks counts the object checks informer events caused.
	checks atomic.Int64
	// syncs counts the full syncs of a release.
	syncs atomic.Int64
	// watchWG counts the running informers.
	watchWG sync.WaitGroup
	// syncLimit paces the requests of full syncs below the client's rate
	// limit, which checks and corrections share: they find it free.
	syncLimit flowcontrol.RateLimiter

	mu sync.Mutex
	// running: Start is running; queue holds its full syncs and checks
	// the object checks informer events cause. Checks have their own
	// queue and workers, so a correction never waits behind a full sync
	// of every release.
	running    bool
	queue      workqueue.TypedRateLimitingInterface[item]
	checkQueue workqueue.TypedRateLimitingInterface[item]
	startedAt  time.Time
	desiredSet bool
	releases   map[string]*releaseState
	// index maps each desired object to its release, for informer
	// events.
	index       map[objKey]string
	watches     map[watchKey]*watch
	synced      chan struct{}
	syncedAt    time.Time
	corrections int64
}

// releaseState is what the reconciler knows of one release.
type releaseState struct {
	spec Release
	// gen changes whenever spec is replaced.
	gen uint64
	// objects are the desired objects of the last full sync.
	objects map[objKey]*objectState
	// attempted: a full sync of this generation ran, well or not.
	attempted   bool
	helmVersion int
	// stale: a live object carries a higher revision than spec.
	stale bool
	// err says why the last full sync failed.
	err string
	// reported is the signature of the last state reported; "" before
	// the first.
	reported string
}

// objectState is one desired object.
type objectState struct {
	key     objKey
	desired *unstructured.Unstructured
	// base is nil until the first dry run.
	base *baseline
	// drift is the object's current drift, nil when in sync.
	drift *ObjectDrift
	// driftErr says why a correction failed.
	driftErr string
	// event is the signature of the last drift Event recorded.
	event string
	// corrected holds the times of the last corrections, at most
	// flapLimit.
	corrected []time.Time
}

// pausedUntil returns when the object may be corrected again after
// flapLimit corrections within flapWindow; zero when it may be now.
func (st *objectState) pausedUntil(now time.Time) time.Time {
	if len(st.corrected) < flapLimit {
		return time.Time{}
	}
	if until := st.corrected[0].Add(flapWindow); now.Before(until) {
		return until
	}
	return time.Time{}
}

// noteCorrection records a correction at now.
func (st *objectState) noteCorrection(now time.Time) {
	st.corrected = append(st.corrected, now)
	if len(st.corrected) > flapLimit {
		st.corrected = st.corrected[len(st.corrected)-flapLimit:]
	}
}

// item is one unit of work: a full sync of a release (obj zero) or a
// check of one of its objects.
type item struct {
	release string
	obj     objKey
}

// Stats describes the reconciler, for benchmarks and status pages.
type Stats struct {
	// Releases is the number of releases in the desired set.
	Releases int
	// Objects is the number of desired objects watched.
	Objects int
	// Watches is the number of informers running.
	Watches int
	// Drifted is the number of objects drifted now.
	Drifted int
	// Corrections counts the objects applied again since New.
	Corrections int64
	// Checks counts the object checks informer events caused since New.
	Checks int64
	// Syncs counts the full syncs of a release done since New.
	Syncs int64
	// SyncedAt is when every release of the desired set had had its
	// first full sync; zero before.
	SyncedAt time.Time
	// FirstSync is the time from Start to SyncedAt.
	FirstSync time.Duration
}

// New returns a Reconciler for opts. It makes no API call.
func New(opts Options) (*Reconciler, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(opts.Config)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultRequestTimeout
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("reconcile: kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("reconcile: kubernetes client: %w", err)
	}
	kc, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("reconcile: kubernetes client: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("reconcile: kubernetes client: %w", err)
	}
	r := &Reconciler{
		opts:     opts,
		log:      opts.Logger,
		helmLog:  slog.New(slog.DiscardHandler),
		dyn:      dyn,
		kube:     kc,
		mapper:   restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco)),
		releases: map[string]*releaseState{},
		index:    map[objKey]string{},
		watches:  map[watchKey]*watch{},
		synced:   make(chan struct{}),
		// Three quarters of the client's rate, with a small burst.
		syncLimit: flowcontrol.NewTokenBucketRateLimiter(cfg.QPS*syncShare, max(1, int(float32(cfg.Burst)*syncShare/4))),
	}
	r.reports = newReportQueue(opts.Reporter, opts.ReportBackoff, opts.Logger)
	return r, nil
}

// Start reconciles until ctx ends, then stops every informer and worker
// and returns nil. It may be called again after it returned (when this
// replica leads again): the desired set is kept, every release is synced
// afresh and its state reported again. It fails with ErrStarted while
// another Start runs.
func (r *Reconciler) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return ErrStarted
	}
	r.running = true
	newQueue := func() workqueue.TypedRateLimitingInterface[item] {
		return workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[item](retryBase, retryMax))
	}
	queue, checks := newQueue(), newQueue()
	r.queue, r.checkQueue = queue, checks
	if r.startedAt.IsZero() {
		r.startedAt = time.Now()
	}
	for name, rs := range r.releases {
		rs.reported = ""
		queue.Add(item{release: name})
	}
	r.checkSyncedLocked()
	n := len(r.releases)
	r.mu.Unlock()
	r.log.LogAttrs(ctx, slog.LevelInfo, "reconciler started", slog.Int(logReleases, n))

	var wg sync.WaitGroup
	wg.Go(func() { r.reports.run(ctx) })
	wg.Go(func() { r.resyncLoop(ctx) })
	for range r.opts.Workers {
		wg.Go(func() { r.worker(ctx, queue) })
		wg.Go(func() { r.worker(ctx, checks) })
	}
	<-ctx.Done()
	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
	queue.ShutDown()
	checks.ShutDown()
	wg.Wait()
	r.mu.Lock()
	for k, w := range r.watches {
		w.cancel()
		delete(r.watches, k)
	}
	r.mu.Unlock()
	r.watchWG.Wait()
	r.log.LogAttrs(context.WithoutCancel(ctx), slog.LevelInfo, "reconciler stopped")
	return nil
}

// enqueueLocked queues it while Start runs.
func (r *Reconciler) enqueueLocked(it item) {
	if r.running {
		r.queueFor(it).Add(it)
	}
}

// queueFor returns the queue of it: checks of one object, or full syncs.
func (r *Reconciler) queueFor(it item) workqueue.TypedRateLimitingInterface[item] {
	if it.obj != (objKey{}) {
		return r.checkQueue
	}
	return r.queue
}

// enqueueAfter queues it after d while Start runs.
func (r *Reconciler) enqueueAfter(it item, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		r.queueFor(it).AddAfter(it, d)
	}
}

// enqueue queues it while Start runs.
func (r *Reconciler) enqueue(it item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enqueueLocked(it)
}

// SetDesired replaces the desired set with rels, as the hub sends it.
// Releases missing from rels stop being reconciled; their objects are left
// as they are. Invalid releases are logged and skipped.
func (r *Reconciler) SetDesired(rels []Release) {
	valid := make(map[string]Release, len(rels))
	for _, rel := range rels {
		if err := rel.Validate(); err != nil {
			r.log.LogAttrs(context.Background(), slog.LevelWarn, "desired release skipped", slog.String(logRelease, rel.Name), slog.String(logError, err.Error()))
			continue
		}
		valid[rel.Name] = rel
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.desiredSet = true
	for name := range r.releases {
		if _, ok := valid[name]; !ok {
			r.forgetLocked(name)
		}
	}
	for _, rel := range valid {
		r.putLocked(rel)
	}
	r.checkSyncedLocked()
}

// Update sets the desired state of one release, typically right after a
// task of this agent applied it (ideally while the task still holds the
// release's lock). A release older than the one known (a lower Revision)
// is ignored.
func (r *Reconciler) Update(rel Release) {
	if err := rel.Validate(); err != nil {
		r.log.LogAttrs(context.Background(), slog.LevelWarn, "desired release skipped", slog.String(logRelease, rel.Name), slog.String(logError, err.Error()))
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rs, ok := r.releases[rel.Name]; ok && rel.Revision < rs.spec.Revision {
		return
	}
	r.putLocked(rel)
}

// Forget stops reconciling release name; its objects are left as they
// are.
func (r *Reconciler) Forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetLocked(name)
	r.checkSyncedLocked()
}

// Synced is closed once every release of the desired set has had its
// first full sync after Start (successful or not). It stays open until
// SetDesired or Update has given a desired state.
func (r *Reconciler) Synced() <-chan struct{} { return r.synced }

// Stats returns the reconciler's counters.
func (r *Reconciler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Releases: len(r.releases), Watches: len(r.watches), Corrections: r.corrections, Checks: r.checks.Load(), Syncs: r.syncs.Load(), SyncedAt: r.syncedAt}
	if !r.syncedAt.IsZero() {
		s.FirstSync = r.syncedAt.Sub(r.startedAt)
	}
	for _, rs := range r.releases {
		s.Objects += len(rs.objects)
		for _, st := range rs.objects {
			if st.drift != nil {
				s.Drifted++
			}
		}
	}
	return s
}

// putLocked sets the desired state of a release and queues its full sync
// when it changed.
func (r *Reconciler) putLocked(rel Release) {
	r.desiredSet = true
	rs, ok := r.releases[rel.Name]
	if ok && reflect.DeepEqual(rs.spec, rel) {
		return
	}
	if !ok {
		rs = &releaseState{objects: map[objKey]*objectState{}}
		r.releases[rel.Name] = rs
	}
	rs.spec = rel
	rs.gen++
	rs.attempted = false
	rs.stale = false
	r.enqueueLocked(item{release: rel.Name})
}

// forgetLocked drops a release and, later, the informers no other release
// needs.
func (r *Reconciler) forgetLocked(name string) {
	rs, ok := r.releases[name]
	if !ok {
		return
	}
	for k := range rs.objects {
		if r.index[k] == name {
			delete(r.index, k)
		}
	}
	delete(r.releases, name)
	r.reports.drop(name)
	r.pruneWatchesLocked()
}

// checkSyncedLocked closes synced when every release has had a full sync.
func (r *Reconciler) checkSyncedLocked() {
	if r.startedAt.IsZero() || !r.desiredSet || !r.syncedAt.IsZero() {
		return
	}
	for _, rs := range r.releases {
		if !rs.attempted {
			return
		}
	}
	r.syncedAt = time.Now()
	close(r.synced)
}

// worker handles queued items until the queue shuts down.
func (r *Reconciler) worker(ctx context.Context, queue workqueue.TypedRateLimitingInterface[item]) {
	for {
		it, shutdown := queue.Get()
		if shutdown {
			return
		}
		var err error
		if it.obj == (objKey{}) {
			err = r.syncRelease(ctx, it.release)
		} else {
			err = r.checkObject(ctx, it.release, it.obj)
		}
		switch {
		case err == nil || ctx.Err() != nil:
			queue.Forget(it)
		default:
			r.log.LogAttrs(ctx, slog.LevelWarn, "reconcile failed; retrying", slog.String(logRelease, it.release), slog.String(logObject, objName(it.obj)), slog.String(logError, err.Error()))
			queue.AddRateLimited(it)
		}
		queue.Done(it)
	}
}

func objName(k objKey) string {
	if k == (objKey{}) {
		return ""
	}
	return k.String()
}

// resyncLoop queues a full sync of every release each Resync period.
func (r *Reconciler) resyncLoop(ctx context.Context) {
	t := time.NewTicker(r.opts.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.resyncAll()
		}
	}
}

// resyncAll queues a full sync of every release, and asks again for the
// desired state of the releases still known stale (the caller's earlier
// refresh may have failed).
func (r *Reconciler) resyncAll() {
	var stale []string
	r.mu.Lock()
	for name, rs := range r.releases {
		if rs.stale {
			stale = append(stale, name)
			continue
		}
		r.enqueueLocked(item{release: name})
	}
	r.mu.Unlock()
	if r.opts.NeedRefresh != nil {
		for _, name := range stale {
			r.opts.NeedRefresh(name)
		}
	}
}
