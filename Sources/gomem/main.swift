print("gomem: placeholder")
