"""The Cog `openapi_schema` of the simulated `simpletuner/advanced-trainer`: its `Input` follows
docs/trainer-contract.md section 1.1 (order, defaults, Secret inputs), its `Output` is one string."""

from __future__ import annotations

from typing import Any

SECRET = {"type": "string", "format": "password", "x-cog-secret": True}

# (name, schema, description) in the order of predict.py; x-order is the position.
_TRAINER_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("images", {"type": "string", "format": "uri"}, "Zip or tar archive of training data."),
    ("config_json", {"type": "string"}, "Training config as a JSON object, or a path inside the container."),
    ("dataloader_json", {"type": "string"}, "Dataset list in multidatabackend.json format, or a path."),
    ("max_train_steps", {"type": "integer"}, "Overrides the config's max_train_steps."),
    ("s3_bucket", {"type": "string"}, "S3 bucket for publishing outputs. Turns on S3 publishing."),
    ("s3_region", {"type": "string"}, "Region for the S3 client."),
    ("s3_endpoint_url", {"type": "string"}, "Endpoint for a non-AWS S3-compatible store."),
    ("s3_base_path", {"type": "string", "default": "simpletuner"}, "Key prefix (simpletuner/{job_id})."),
    ("s3_public_base_url", {"type": "string"}, "Public base URL used to build the returned URL."),
    ("s3_access_key", dict(SECRET), "S3 access key."),
    ("s3_secret_key", dict(SECRET), "S3 secret key."),
    ("hub_model_id", {"type": "string"}, "Hugging Face Hub repository id to push to. Needs hf_token."),
    ("hf_token", dict(SECRET), "Hugging Face token (gated base models, private datasets, Hub pushes)."),
    ("lycoris_config", {"type": "string"}, "LyCORIS config JSON, inline or as a container path."),
    ("return_logs", {"type": "boolean", "default": True}, "Print the tail of the trainer's debug.log."),
]

# An older published version predates LyCORIS support, so clients must read the schema per version.
OLDER_VERSION_OMITS = frozenset({"lycoris_config"})


def trainer_input_schema(omit: frozenset[str] = frozenset()) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for order, (name, schema, description) in enumerate(_TRAINER_INPUTS):
        if name in omit:
            continue
        prop = {**schema, "title": name.replace("_", " ").title(), "description": description}
        if "default" not in prop:
            prop["nullable"] = True  # Optional[...] = Input(default=None), as Cog renders it
        prop["x-order"] = order
        properties[name] = prop
    return {"type": "object", "title": "Input", "properties": properties}


def _status_schema() -> dict[str, Any]:
    return {
        "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
        "type": "string",
        "title": "Status",
        "description": "An enumeration.",
    }


def _request_schema(title: str, input_ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": title,
        "properties": {
            "id": {"type": "string", "title": "Id", "nullable": True},
            "input": {"$ref": f"#/components/schemas/{input_ref}"},
            "webhook": {"type": "string", "format": "uri", "title": "Webhook", "nullable": True},
            "webhook_events_filter": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/WebhookEvent"},
                "default": ["start", "output", "logs", "completed"],
            },
        },
    }


def _response_schema(title: str, input_ref: str, output_ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": title,
        "properties": {
            "id": {"type": "string", "title": "Id", "nullable": True},
            "input": {"$ref": f"#/components/schemas/{input_ref}"},
            "output": {"$ref": f"#/components/schemas/{output_ref}"},
            "logs": {"type": "string", "title": "Logs", "default": ""},
            "error": {"type": "string", "title": "Error", "nullable": True},
            "status": {"$ref": "#/components/schemas/Status"},
            "metrics": {"type": "object", "title": "Metrics", "nullable": True},
        },
    }


def _post(path_title: str, request_ref: str, response_ref: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": path_title,
            "operationId": path_title.lower().replace(" ", "_"),
            "requestBody": {"content": {"application/json": {"schema": {"$ref": request_ref}}}},
            "responses": {
                "200": {
                    "description": "Successful Response",
                    "content": {"application/json": {"schema": {"$ref": response_ref}}},
                },
                "422": {
                    "description": "Validation Error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
                    },
                },
            },
        }
    }


def trainer_openapi_schema(omit: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A Cog-generated document: Input/Output for predictions, the same for trainings."""
    input_schema = trainer_input_schema(omit)
    output_schema = {"type": "string", "title": "Output"}
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {
            "/": {"get": {"summary": "Root", "operationId": "root__get", "responses": {"200": {}}}},
            "/health-check": {"get": {"summary": "Healthcheck", "responses": {"200": {}}}},
            "/predictions": _post(
                "Predict", "#/components/schemas/PredictionRequest", "#/components/schemas/PredictionResponse"
            ),
            "/trainings": _post(
                "Train", "#/components/schemas/TrainingRequest", "#/components/schemas/TrainingResponse"
            ),
        },
        "components": {
            "schemas": {
                "Input": input_schema,
                "Output": output_schema,
                "TrainingInput": {**input_schema, "title": "TrainingInput"},
                "TrainingOutput": {**output_schema, "title": "TrainingOutput"},
                "Status": _status_schema(),
                "WebhookEvent": {
                    "enum": ["start", "output", "logs", "completed"],
                    "type": "string",
                    "title": "WebhookEvent",
                    "description": "An enumeration.",
                },
                "PredictionRequest": _request_schema("PredictionRequest", "Input"),
                "PredictionResponse": _response_schema("PredictionResponse", "Input", "Output"),
                "TrainingRequest": _request_schema("TrainingRequest", "TrainingInput"),
                "TrainingResponse": _response_schema("TrainingResponse", "TrainingInput", "TrainingOutput"),
                "ValidationError": {
                    "type": "object",
                    "title": "ValidationError",
                    "required": ["loc", "msg", "type"],
                    "properties": {
                        "loc": {
                            "type": "array",
                            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        },
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                },
                "HTTPValidationError": {
                    "type": "object",
                    "title": "HTTPValidationError",
                    "properties": {
                        "detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}
                    },
                },
            }
        },
    }


def lora_openapi_schema() -> dict[str, Any]:
    """The schema of a version a training creates: a text-to-image model that uses the LoRA."""
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {
            "schemas": {
                "Input": {
                    "type": "object",
                    "title": "Input",
                    "required": ["prompt"],
                    "properties": {
                        "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
                        "lora_scale": {
                            "type": "number",
                            "title": "Lora Scale",
                            "default": 1.0,
                            "minimum": 0,
                            "maximum": 2,
                            "x-order": 1,
                        },
                    },
                },
                "Output": {"type": "array", "title": "Output", "items": {"type": "string", "format": "uri"}},
            }
        },
    }
