"""Fake secrets and personal data for the redaction tests, built at run time so that no file of the
repository holds a literal credential (scanners and push protection would flag one)."""

GITHUB_TOKEN = "ghp_" + "Zq7" * 12  # 'ghp_' and 36 characters: GitHub's personal access token shape
AWS_KEY = "AKIA" + "QX7Z" * 4  # AWS's access key id shape
OPENAI_KEY = "sk-proj-" + "Vw2_kR9-" * 20  # an OpenAI project key's shape: 'sk-proj-' and - and _ inside
SLACK_TOKEN = "-".join(["xoxb", "1234567890", "9876543210", "fakeslacktokenvalue0"])
URL_PASSWORD = "s3cretPassw0rd"
URL_WITH_PASSWORD = f"https://deploy:{URL_PASSWORD}@git.example.com/acme/widgets.git"
EMAIL = "ana.silva@example.com"
PHONE = "+1 415-555-0132"
RAW_VALUES = (GITHUB_TOKEN, AWS_KEY, SLACK_TOKEN, URL_PASSWORD, EMAIL, PHONE)

SLACK_TEXT = f"My CI token is {SLACK_TOKEN}, reach me at {EMAIL} or {PHONE}."
GITHUB_TEXT = (f"Pushing with {URL_WITH_PASSWORD} fails; my token {GITHUB_TOKEN} and the key {AWS_KEY} "
               f"are in the config. Mail {EMAIL}, phone {PHONE}.")
