"""Study and tuning specs: parse and validate YAML before anything is trained or recorded; designs."""
