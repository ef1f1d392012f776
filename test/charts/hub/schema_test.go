package hub

import (
	"strings"
	"testing"
)

func TestSchemaRefusesBadValues(t *testing.T) {
	ch := loadChart(t)
	cases := []struct {
		name   string
		values string
		// want are substrings of the error: the field, and what is wrong.
		want []string
	}{
		{
			name:   "a database mode other than sqlite or postgres is refused",
			values: "database: {mode: mysql}",
			want:   []string{"/database/mode", "must be one of", "'sqlite'", "'postgres'"},
		},
		{
			name:   "postgres mode without the connection string's Secret is refused",
			values: "database: {mode: postgres}",
			want:   []string{"/database/postgres/existingSecret", "minLength"},
		},
		{
			name:   "more than one replica on SQLite is refused",
			values: "replicas: 2",
			want:   []string{"/replicas", "maximum"},
		},
		{
			name:   "zero replicas are refused",
			values: "database: {mode: postgres, postgres: {existingSecret: db}}\nreplicas: 0",
			want:   []string{"/replicas", "minimum"},
		},
		{
			name:   "an unknown top-level key is refused",
			values: "replicaCount: 2",
			want:   []string{"replicaCount", "not allowed"},
		},
		{
			name:   "a connection string given as a value is refused",
			values: "database: {mode: postgres, postgres: {existingSecret: db, url: 'postgres://u:p@db/outpost'}}",
			want:   []string{"/database/postgres", "'url'", "not allowed"},
		},
		{
			name:   "a --db flag smuggled through extraArgs is refused",
			values: "extraArgs: ['--db=postgres://u:p@db/outpost']",
			want:   []string{"/extraArgs/0", "not"},
		},
		{
			name:   "a root container is refused",
			values: "securityContext: {runAsNonRoot: false}",
			want:   []string{"/securityContext/runAsNonRoot"},
		},
		{
			name:   "privilege escalation is refused",
			values: "securityContext: {allowPrivilegeEscalation: true}",
			want:   []string{"/securityContext/allowPrivilegeEscalation"},
		},
		{
			name:   "a writable root filesystem is refused",
			values: "securityContext: {readOnlyRootFilesystem: false}",
			want:   []string{"/securityContext/readOnlyRootFilesystem"},
		},
		{
			name:   "keeping capabilities is refused",
			values: "securityContext: {capabilities: {drop: []}}",
			want:   []string{"/securityContext/capabilities/drop"},
		},
		{
			name:   "adding a capability is refused",
			values: "securityContext: {capabilities: {add: [NET_ADMIN]}}",
			want:   []string{"/securityContext/capabilities/add", "maxItems"},
		},
		{
			name:   "an unconfined seccomp profile is refused",
			values: "podSecurityContext: {seccompProfile: {type: Unconfined}}",
			want:   []string{"/podSecurityContext/seccompProfile/type", "must be one of"},
		},
		{
			name:   "an unknown pull policy is refused",
			values: "image: {pullPolicy: Sometimes}",
			want:   []string{"/image/pullPolicy", "must be one of"},
		},
		{
			name:   "a listen port a non-root process cannot bind is refused",
			values: "containerPort: 443",
			want:   []string{"/containerPort", "minimum"},
		},
		{
			name:   "an Ingress without a host is refused",
			values: "ingress: {enabled: true, host: ''}",
			want:   []string{"/ingress/host", "minLength"},
		},
		{
			name:   "an Ingress and an HTTPRoute together are refused",
			values: "ingress: {enabled: true}\ngateway: {enabled: true, parentRefs: [{name: public}]}",
			want:   []string{"/ingress/enabled"},
		},
		{
			name:   "an HTTPRoute without a parent Gateway is refused",
			values: "gateway: {enabled: true}",
			want:   []string{"/gateway/parentRefs", "minItems"},
		},
		{
			name:   "an issuer kind cert-manager does not know is refused",
			values: "tls: {certManager: {issuer: ca, issuerKind: Vault}}",
			want:   []string{"/tls/certManager/issuerKind", "must be one of"},
		},
		{
			name:   "a malformed database CIDR is refused",
			values: "database: {postgres: {egress: {cidr: 'db.example.com'}}}",
			want:   []string{"/database/postgres/egress/cidr"},
		},
		{
			name:   "network policies in postgres mode without the database's address are refused",
			values: "database: {mode: postgres, postgres: {existingSecret: db}}\nnetworkPolicies: {enabled: true}",
			want:   []string{"database.postgres.egress", "cidr or namespace"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t.Context(), ch, parseValues(t, tc.values))
			if err == nil {
				t.Fatal("rendered; want the values refused")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q:\n%v", w, err)
				}
			}
		})
	}
}
