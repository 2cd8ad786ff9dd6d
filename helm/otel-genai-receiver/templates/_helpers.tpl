{{/* Names and labels, the usual Helm scheme: fullname = release-chart, capped at 63 characters. */}}
{{- define "otel-genai-receiver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otel-genai-receiver.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The headless Service keeps the "-headless" suffix whatever the fullname's length. */}}
{{- define "otel-genai-receiver.headlessName" -}}
{{- printf "%s-headless" (include "otel-genai-receiver.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "otel-genai-receiver.gatewayName" -}}
{{- printf "%s-gateway" (include "otel-genai-receiver.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "otel-genai-receiver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otel-genai-receiver.labels" -}}
helm.sh/chart: {{ include "otel-genai-receiver.chart" . }}
{{ include "otel-genai-receiver.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: otel-genai-receiver
{{- end }}

{{- define "otel-genai-receiver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otel-genai-receiver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: receiver
{{- end }}

{{- define "otel-genai-receiver.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "otel-genai-receiver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "otel-genai-receiver.gatewayLabels" -}}
helm.sh/chart: {{ include "otel-genai-receiver.chart" . }}
{{ include "otel-genai-receiver.gatewaySelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.gateway.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: otel-genai-receiver
{{- end }}

{{- define "otel-genai-receiver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "otel-genai-receiver.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "otel-genai-receiver.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* More than one receiver process can run at once: several replicas or an autoscaler. */}}
{{- define "otel-genai-receiver.multiReplica" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/*
The receiver config as the pod reads it: the user's config with the listening endpoints set
from .Values.ports, so the container ports, the Service and the config always agree.
Fails the render, with the reason, for a config that cannot work in a pod.
*/}}
{{- define "otel-genai-receiver.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $receivers := $config.receivers | default dict }}
{{- if not (hasKey $receivers "otlp") }}
{{- fail "config.receivers.otlp is required: the chart sets its endpoints from .Values.ports" }}
{{- end }}
{{- $otlp := get $receivers "otlp" | default dict }}
{{- $protocols := get $otlp "protocols" | default dict }}
{{- if not (hasKey $protocols "http") }}
{{- fail "config.receivers.otlp.protocols.http is required: the pod's probes ask GET /health on it" }}
{{- end }}
{{- $http := get $protocols "http" | default dict }}
{{- $_ := set $http "endpoint" (printf "0.0.0.0:%d" (int .Values.ports.otlpHttp)) }}
{{- $_ := set $protocols "http" $http }}
{{- if hasKey $protocols "grpc" }}
{{- $grpc := get $protocols "grpc" | default dict }}
{{- $_ := set $grpc "endpoint" (printf "0.0.0.0:%d" (int .Values.ports.otlpGrpc)) }}
{{- $_ := set $protocols "grpc" $grpc }}
{{- end }}
{{- $_ := set $otlp "protocols" $protocols }}
{{- $_ := set $receivers "otlp" $otlp }}
{{- $exporters := $config.exporters | default dict }}
{{- $prometheusIds := list }}
{{- range $id, $exporter := $exporters }}
{{- $type := regexReplaceAll "/.*$" $id "" }}
{{- if eq $type "prometheus" }}
{{- $prometheusIds = append $prometheusIds $id }}
{{- $body := $exporter | default dict }}
{{- $_ := set $body "endpoint" (printf "0.0.0.0:%d" (int $.Values.ports.metrics)) }}
{{- $_ := set $exporters $id $body }}
{{- end }}
{{- if and (eq $type "clickhouse") (include "otel-genai-receiver.multiReplica" $) }}
{{- $endpoint := (get ($exporter | default dict) "endpoint") | default "embedded:./otel-data" | toString }}
{{- if hasPrefix "embedded:" $endpoint }}
{{- fail (printf "exporters.%s.endpoint is %q: an embedded ClickHouse store belongs to one process, so replicaCount > 1 or autoscaling needs a ClickHouse server (endpoint: https://HOST:8443)" $id $endpoint) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* the receiver would refuse these at start; refusing them here fails `helm install`, not the pod */}}
{{- range $pipelineId, $pipeline := (($config.service | default dict).pipelines | default dict) }}
{{- range $kind := list "receivers" "processors" "exporters" }}
{{- range $componentId := (get ($pipeline | default dict) $kind) | default list }}
{{- if not (hasKey ((get $config $kind) | default dict) $componentId) }}
{{- fail (printf "config.service.pipelines.%s.%s: %q is not defined under config.%s (in Helm values write `%s: {}`: an empty value is null, which removes the key)" $pipelineId $kind $componentId $kind $componentId) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if gt (len $prometheusIds) 1 }}
{{- fail (printf "exporters %s: the chart exposes one metrics port (ports.metrics), so at most one prometheus exporter" (join ", " $prometheusIds)) }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* The exporter ids of type prometheus: the metrics port is exposed only when one exists. */}}
{{- define "otel-genai-receiver.servesMetrics" -}}
{{- range $id, $_ := .Values.config.exporters }}
{{- if eq (regexReplaceAll "/.*$" $id "") "prometheus" }}true{{ end }}
{{- end }}
{{- end }}
