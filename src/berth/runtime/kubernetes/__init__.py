"""The Kubernetes driver: the runtime contract over the Kubernetes API.

`driver.KubernetesRuntime` is the `Runtime`. It reaches the API server through
`client.ApiClient` (httpx for JSON calls and streams, `websockets` for the exec and
port-forward subresources), configured by `config` (a kubeconfig or the in-cluster service
account). `mapping` turns a `TaskSpec` into a Pod and the objects around it (namespace,
NetworkPolicy, Secret, PersistentVolumeClaims), which `objects` makes and removes; `status`
reads pods back into `TaskState`s and events, which `watch` streams (list, then watch by
resource version, relisting on 410 Gone). Commands run through `execs` and `sessions` over
the channel protocol in `channels`; `ports` reaches ports in pods; `logs` decodes the log
subresource; `usage` reads nodes and the kubelet's summary; `images` checks images.

Nothing outside `berth.runtime` imports this package but the factory (an import contract
says so); it imports nothing of another driver.
"""

from berth.runtime.kubernetes.driver import KubernetesRuntime

__all__ = ["KubernetesRuntime"]
