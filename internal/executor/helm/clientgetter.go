package helm

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// clusterClients is what every task shares: the agent's REST config and one
// discovery cache and REST mapper, so that a task does not rediscover the
// API. Helm invalidates the cache after it installs CRDs; the mapper then
// rediscovers on its next miss.
type clusterClients struct {
	config    *rest.Config
	discovery discovery.CachedDiscoveryInterface
	mapper    *restmapper.DeferredDiscoveryRESTMapper
}

func newClusterClients(cfg *rest.Config) (*clusterClients, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cached := memory.NewMemCacheClient(dc)
	return &clusterClients{config: cfg, discovery: cached, mapper: restmapper.NewDeferredDiscoveryRESTMapper(cached)}, nil
}

// forNamespace returns the RESTClientGetter Helm's action configuration
// needs, defaulting to namespace. No kubeconfig file is read: the loader
// only carries the namespace.
func (c *clusterClients) forNamespace(namespace string) *clientGetter {
	return &clientGetter{clients: c, namespace: namespace}
}

// clientGetter implements genericclioptions.RESTClientGetter over
// clusterClients.
type clientGetter struct {
	clients   *clusterClients
	namespace string
}

func (g *clientGetter) ToRESTConfig() (*rest.Config, error) {
	return rest.CopyConfig(g.clients.config), nil
}

func (g *clientGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return g.clients.discovery, nil
}

func (g *clientGetter) ToRESTMapper() (meta.RESTMapper, error) { return g.clients.mapper, nil }

func (g *clientGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(clientcmdapi.Config{}, &clientcmd.ConfigOverrides{
		Context: clientcmdapi.Context{Namespace: g.namespace},
	})
}
