# Reserved in the migration chain so that work on several models can proceed side by side; its
# operations are filled in by the change that needs them (an empty migration is harmless).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("django_sendfleet", "0004_address_columns_320")]

    operations = []
