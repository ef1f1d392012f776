// Package helm runs helm tasks: install (upgrade --install), upgrade,
// rollback, uninstall, status and history of one Helm release, on the Helm 4
// SDK, as the agent's own Kubernetes identity.
//
// A task that changes the cluster goes through phases, and a failure names
// the phase it happened in:
//
//   - fetch: the chart archive comes inline, as a task artifact (verified by
//     digest), or from an HTTP(S) repository or OCI registry with
//     credentials resolved from vault references and held in memory only;
//   - verify: the archive (and every subchart archive in it) is unpacked in
//     memory under per-file and total caps, refusing absolute paths, "..",
//     links and devices; YAML files are checked for alias bombs; JSON
//     schemas may not reference anything outside the chart;
//   - render: Helm renders the release as a server-side dry run, with DNS
//     lookups disabled and lookup limited to what the agent may read;
//   - validate: every rendered object passes the agent's deny list, a
//     SelfSubjectAccessReview for each verb the release needs, an ownership
//     check (an object that belongs to no Helm release or another one fails
//     the task unless adopt is set) and a server-side dry-run apply, before
//     the first write;
//   - apply: Helm installs CRDs first, runs hooks honouring their delete
//     policies, and applies the objects with server-side apply; an atomic
//     task that fails rolls back (or uninstalls a failed first install) and
//     says so;
//   - wait: when asked, readiness of Deployments, StatefulSets, DaemonSets
//     and Jobs within the timeout.
//
// Every object the release writes carries the outpost.dev/release label.
// Each revision records the task and attempt that wrote it, so a retry of a
// task whose revision is already deployed reports it instead of making
// another, and a release left pending by a killed agent is marked failed
// before the next attempt goes on.
package helm
