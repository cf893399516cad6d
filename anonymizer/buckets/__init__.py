"""S3 buckets as source and sink (boto3); objects go through a daemon folder (docs/buckets.md)."""
