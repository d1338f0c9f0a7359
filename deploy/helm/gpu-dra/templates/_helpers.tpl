{{/*
Names and labels shared by every template. Names are capped at 63 characters (DNS labels) and
prefixed with the release name unless the release already names the chart.
*/}}
{{- define "gpu-dra.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gpu-dra.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "gpu-dra.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gpu-dra.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "gpu-dra.pluginServiceAccount" -}}
{{- printf "%s-kubelet-plugin" (include "gpu-dra.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gpu-dra.controllerServiceAccount" -}}
{{- printf "%s-controller" (include "gpu-dra.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Arguments every gpu-dra command takes before its subcommand. */}}
{{- define "gpu-dra.globalArgs" -}}
- --log-level={{ .Values.logLevel }}
- --log-format={{ .Values.logFormat }}
{{- end -}}

{{/* The controller's leader-election Lease (in the release namespace). */}}
{{- define "gpu-dra.leaseName" -}}
{{- printf "%s-controller" (include "gpu-dra.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of a node group's DaemonSet and ConfigMap: (list $ group). */}}
{{- define "gpu-dra.pluginGroupName" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- printf "%s-kubelet-plugin-%s" (include "gpu-dra.fullname" $root) $group.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The NVML backend of a node group: its own `nvml`, else the global one. */}}
{{- define "gpu-dra.groupNvml" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- default $root.Values.nvml $group.nvml -}}
{{- end -}}

{{/* The --nvml argument: `mock` means the group's inline description, mounted from its ConfigMap. */}}
{{- define "gpu-dra.nvmlArg" -}}
{{- $nvml := include "gpu-dra.groupNvml" . -}}
{{- if eq $nvml "mock" -}}
mock:/etc/gpu-dra/mock-node.yaml
{{- else -}}
{{- $nvml -}}
{{- end -}}
{{- end -}}

{{/*
The plugin's node config (docs/ARCHITECTURE.md, "Config files"). `migConfig` is not part of it: it
names the MIG layout mig-parted applies to real GPUs, and for mock NVML it becomes the mock node's
migConfig.
*/}}
{{- define "gpu-dra.nodeConfig" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- $config := dict "driverName" $root.Values.driverName "sharing" (omit $group.sharing "migConfig") -}}
{{- with $group.gpus }}
{{- $_ := set $config "gpus" . -}}
{{- end }}
{{- toYaml $config -}}
{{- end -}}

{{/* The inline mock node description of a group whose nvml is `mock`. */}}
{{- define "gpu-dra.mockNode" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- $source := default $root.Values.mockNode $group.mockNode -}}
{{- if not $source -}}
{{- fail (printf "plugin.nodeGroups[%s]: nvml is \"mock\" but neither the group nor the chart has a mockNode; give a mock node description (e.g. mockNode: {profile: A100-SXM4-80GB, gpuCount: 8}) or use nvml: mock:<profile>" $group.name) -}}
{{- end -}}
{{- $node := deepCopy $source -}}
{{- if and $group.sharing.migConfig (not (hasKey $node "migConfig")) -}}
{{- $_ := set $node "migConfig" $group.sharing.migConfig -}}
{{- end -}}
{{- toYaml $node -}}
{{- end -}}

{{/*
ResourceSlice counter layout: the cluster's Kubernetes minor version decides (1.35 moved counter
sets into slices of their own); plugin.sliceLayout overrides it.
*/}}
{{- define "gpu-dra.sliceLayout" -}}
{{- if .Values.plugin.sliceLayout -}}
{{- .Values.plugin.sliceLayout -}}
{{- else if semverCompare "<1.35.0-0" .Capabilities.KubeVersion.Version -}}
1.34
{{- else -}}
1.35
{{- end -}}
{{- end -}}
