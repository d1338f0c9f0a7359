"""One module per kube-scheduler constraint: its filter (may the pod go to this node, and if not,
kube-scheduler's words for why) and, where upstream scores, its score."""
