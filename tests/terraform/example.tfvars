project_id = "acme-platform-prod"
region     = "europe-west1"
operators  = ["group:platform-oncall@example.com"]
