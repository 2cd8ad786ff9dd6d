"""Anomaly flags: streaming detection of latency, error-rate, token and cost anomalies."""

from processors.anomaly.detector import Detector, DetectorParams

__all__ = ["Detector", "DetectorParams"]
