"""The deployed shape of taskrunner's stacks, concrete, and IAM's verdict on requests against it.

One home for what the template tier (the shape of what is deployed) and the security tier (requests an attacker
or the stack itself would make) both need:

* :mod:`tests.policies.cfn`: a template resolved as CloudFormation would for one set of parameter values, every
  ``Ref`` and ``Fn::GetAtt`` the name, id or ARN CloudFormation would give it;
* :mod:`tests.policies.iam`: IAM's evaluation logic for the parts these policies use;
* :mod:`tests.policies.stacks`: template.yaml as CloudFormation receives it (SAM-transformed) and jobs/job.yaml.

Their own tests sit beside them (test_cfn.py, test_iam.py): a resolver or simulator that got a rule wrong would
let every policy test pass.
"""
