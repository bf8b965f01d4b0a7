from vrft.resources.files import AsyncFiles, Files
from vrft.resources.graders import AsyncGraders, Graders
from vrft.resources.jobs import AsyncJobs, Jobs
from vrft.resources.models import AsyncModels, Models

__all__ = ["Files", "AsyncFiles", "Jobs", "AsyncJobs", "Graders", "AsyncGraders", "Models", "AsyncModels"]
