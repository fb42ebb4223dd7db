#include "fileutil.h"

#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool fsync_folder_of(const char *path)
{
	char *copy = strdup(path);
	int fd;
	bool ok;

	if(copy == NULL) return false;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if(fd < 0) return false;
	ok = fsync(fd) == 0;
	close(fd);
	return ok;
}
