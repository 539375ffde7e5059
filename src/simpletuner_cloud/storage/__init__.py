"""The built-in S3-compatible endpoint (`/api/cloud/storage/`) that receives a local-download job's
files from the trainer: SigV4 checked with botocore's signer, aws-chunked bodies decoded, objects
written atomically under `cloud_outputs/`. No database access here; services/ decides who may write."""
