// Package postgres implements store.Store on PostgreSQL (pgx), for several
// hub replicas sharing one database.
//
// Claims lock tasks with FOR UPDATE SKIP LOCKED and plan with the shared
// store.PlanClaims, so replicas claiming at once never lease one task twice
// nor two tasks sharing a conflict key. Enqueues into one environment are
// serialized by a transaction advisory lock, so the enqueue order (task
// seq) is also the commit order every replica sees. Audit events are sealed
// after their tenant's head row, locked as late as possible. Wake-ups are
// sent with pg_notify right after the transaction commits, so a write never
// holds PostgreSQL's global notify lock, and listeners on every replica hear
// them once the change is visible.
package postgres
