"""Batch processor: coalesces requests per tenant into batches by size and timeout."""

from otel_receiver.component import Factory
from processors.batch.config import BatchProcessorConfig
from processors.batch.processor import BatchProcessor, create
from processors.batch.split import split

factory: Factory[BatchProcessorConfig, BatchProcessor] = Factory(
    type_name="batch",
    config_model=BatchProcessorConfig,
    create=create,
    description="merges requests per tenant into batches of send_batch_size items or after timeout",
)

__all__ = ["BatchProcessor", "BatchProcessorConfig", "factory", "split"]
